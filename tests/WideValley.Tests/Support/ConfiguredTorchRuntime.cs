using WideValley.Tests.Support;

// The library no longer configures libtorch on its own (TorchRuntime.Configure is explicit), so the test host does
// what the widevalley command does at start, once, before any test: oneDNN off (its float32 convolutions return NaN
// channels now and then on our machines, and LeNet tests would fail at random), NNPACK off, glibc malloc tuned; the
// WIDEVALLEY_ONEDNN and WIDEVALLEY_MALLOC_TUNING variables count as for the command.
[assembly: AssemblyFixture(typeof(ConfiguredTorchRuntime))]

namespace WideValley.Tests.Support;

/// <summary>Applies <see cref="TorchRuntimeConfiguration.FromEnvironment"/> before the first test of the assembly.</summary>
public sealed class ConfiguredTorchRuntime
{
    /// <summary>The configuration the tests run under.</summary>
    public static TorchRuntimeConfiguration Configuration { get; } = TorchRuntimeConfiguration.FromEnvironment();

    /// <summary>Called by xunit once per test assembly.</summary>
    public ConfiguredTorchRuntime() => TorchRuntime.Configure(Configuration);

    /// <summary>
    /// Puts <see cref="Configuration"/> back after a test that changed the process-wide switches. (Tests run one at a
    /// time: AssemblyInfo.cs puts them in one collection.)
    /// </summary>
    public static void Restore() => TorchRuntime.Configure(Configuration);
}
