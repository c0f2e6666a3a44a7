using System.Runtime.CompilerServices;
using WideValley.Cli;

namespace WideValley.Tests.Support;

/// <summary>
/// The test host gets the same OpenMP wait policy as the widevalley command (Program.cs), before any test loads
/// libtorch. With OpenMP's default, worker threads spin between parallel regions and fight the test thread for the
/// cores: on a loaded 2-core machine an in-process quick benchmark took three times as long (56 s against 19 s).
/// </summary>
static class PassiveOpenMp
{
    [ModuleInitializer]
    internal static void Set() => NativeEnvironment.PreferPassiveOpenMpThreads();
}
