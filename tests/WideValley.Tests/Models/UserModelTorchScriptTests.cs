using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using WideValley.Data;
using WideValley.Landscape;
using WideValley.Models;
using static TorchSharp.torch;

namespace WideValley.Tests.Models;

/// <summary>
/// The TorchScript fixture (Fixtures/torchscript, made by make_fixture.py with PyTorch 1.13) loaded by libtorch 2.10
/// through TorchSharp, against the same network written in C# with the same weights, and against PyTorch's own
/// float64 numbers in reference.txt.
/// </summary>
public sealed class UserModelTorchScriptTests
{
    internal static string Fixture(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "Fixtures", "torchscript", .. parts]);

    /// <summary>make_fixture.py's TinyConvNet in TorchSharp: conv 4@5x5 stride 3, tanh, linear 256 -> 10.</summary>
    internal sealed class TinyConvNet : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv = nn.Conv2d(1, 4, 5, stride: 3);
        private readonly Linear fc = nn.Linear(4 * 8 * 8, 10);

        public TinyConvNet() : base(nameof(TinyConvNet)) => RegisterComponents();

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            return fc.call(tanh(conv.call(input)).flatten(1)).MoveToOuterDisposeScope();
        }

        /// <summary>The twin with the fixture's weights, read from the .npy files make_fixture.py exported.</summary>
        public static TinyConvNet WithFixtureWeights()
        {
            var model = new TinyConvNet();
            using var noGrad = no_grad();
            foreach (var (name, parameter) in model.named_parameters())
            {
                using var stored = Npy.ReadTensor(Fixture("weights", name + ".npy"));
                parameter.copy_(stored);
            }
            return model;
        }
    }

    internal static IReadOnlyDictionary<string, double> Reference() =>
        File.ReadAllLines(Fixture("reference.txt"))
            .Where(line => !line.StartsWith('#'))
            .Select(line => line.Split(' '))
            .ToDictionary(parts => parts[0], parts => double.Parse(parts[1], CultureInfo.InvariantCulture));

    internal static (Tensor Inputs, Tensor Labels) Samples() =>
        (Npy.ReadTensor(Fixture("inputs.npy")), Npy.ReadTensor(Fixture("labels.npy")));

    [Fact]
    public void LibTorchLoadsThePyTorch113ArchiveWithTheTwinsParameterNamesAndShapes()
    {
        using var script = TorchScriptModel.Load(Fixture("tiny_convnet.pt"));
        using var twin = new TinyConvNet();
        var loaded = script.named_parameters().Select(p => (p.name, Shape: string.Join("x", p.parameter.shape))).ToArray();
        var expected = twin.named_parameters().Select(p => (p.name, Shape: string.Join("x", p.parameter.shape))).ToArray();
        Assert.Equal(expected, loaded);
        Assert.Equal(2674, script.parameters().Sum(p => p.numel()));
        Assert.All(script.parameters(), p => Assert.True(p.requires_grad));
    }

    [Fact]
    public void ForwardEqualsPyTorchsLogitsAndTheCSharpTwin()
    {
        using var scope = NewDisposeScope();
        using var script = TorchScriptModel.Load(Fixture("tiny_convnet.pt"));
        using var twin = TinyConvNet.WithFixtureWeights();
        var (inputs, _) = Samples();
        var pytorch = Npy.ReadTensor(Fixture("logits.npy"));
        using var noGrad = no_grad();
        var fromScript = script.call(inputs);
        var fromTwin = twin.call(inputs);
        Assert.Equal(new long[] { 64, 10 }, fromScript.shape);
        Assert.True(fromScript.allclose(pytorch, rtol: 1e-5, atol: 1e-5), $"max |script - pytorch| = {fromScript.sub(pytorch).abs().max().ToSingle()}");
        Assert.True(fromScript.allclose(fromTwin, rtol: 1e-5, atol: 1e-5), $"max |script - twin| = {fromScript.sub(fromTwin).abs().max().ToSingle()}");
        // Not a vacuous comparison: the logits differ from sample to sample.
        Assert.True(fromScript.std().ToSingle() > 0.05f);
    }

    [Fact]
    public void HessianVectorProductsByDoubleBackwardThroughTheScriptEqualTheTwins()
    {
        using var scope = NewDisposeScope();
        using var script = TorchScriptModel.Load(Fixture("tiny_convnet.pt"));
        using var twin = TinyConvNet.WithFixtureWeights();
        var (inputs, labels) = Samples();
        var batches = new List<(Tensor, Tensor)> { (inputs.narrow(0, 0, 40), labels.narrow(0, 0, 40)), (inputs.narrow(0, 40, 24), labels.narrow(0, 40, 24)) };
        using var scriptHvp = new Hvp(script, batches);
        using var twinHvp = new Hvp(twin, batches);
        Assert.Equal(twinHvp.Dimension, scriptHvp.Dimension);
        using var generator = new Generator(11);
        for (var trial = 0; trial < 3; trial++)
        {
            var v = randn(scriptHvp.Dimension, generator: generator);
            var fromScript = scriptHvp.Apply(v);
            var fromTwin = twinHvp.Apply(v);
            var error = fromScript.sub(fromTwin).norm().ToDouble() / fromTwin.norm().ToDouble();
            Assert.True(error < 1e-5, $"trial {trial}: relative difference {error:E2}");
            Assert.True(fromTwin.norm().ToDouble() > 0.1);
        }
        Assert.Equal(Reference()["loss"], scriptHvp.Evaluate().Loss, 5);
    }

    [Fact]
    public void DoubleBackwardStillWorksAfterTheProfilingExecutorHasOptimisedTheScript()
    {
        // libtorch's profiling executor runs a script plainly for its first calls and then swaps in an optimised graph
        // with autodiff subgraphs. Without the kept gradient graph every product is a fresh forward and double
        // backward, so these products run through the optimised graph too.
        using var scope = NewDisposeScope();
        using var script = TorchScriptModel.Load(Fixture("tiny_convnet.pt"));
        using var twin = TinyConvNet.WithFixtureWeights();
        var (inputs, labels) = Samples();
        var batches = new List<(Tensor, Tensor)> { (inputs, labels) };
        var options = new LandscapeOptions { ReuseGradientGraph = false };
        using var scriptHvp = new Hvp(script, batches, options);
        using var twinHvp = new Hvp(twin, batches, options);
        using var generator = new Generator(2);
        var v = randn(scriptHvp.Dimension, generator: generator);
        var expected = twinHvp.Apply(v);
        for (var call = 0; call < 6; call++)
        {
            var error = scriptHvp.Apply(v).sub(expected).norm().ToDouble() / expected.norm().ToDouble();
            Assert.True(error < 1e-5, $"product {call}: relative difference {error:E2}");
        }
    }

    [Fact]
    public void TopHessianEigenvalueOfTheScriptEqualsTheTwinsAndPyTorchsFloat64Reference()
    {
        using var scope = NewDisposeScope();
        var (inputs, labels) = Samples();
        var batches = new List<(Tensor, Tensor)> { (inputs, labels) };
        var options = new LanczosOptions { Seed = 3, Tolerance = 1e-6 };
        double scriptTop, twinTop, scriptTop64;
        using (var script = TorchScriptModel.Load(Fixture("tiny_convnet.pt")))
        using (var hvp = new Hvp(script, batches))
            scriptTop = Lanczos.Run(hvp, 2, SpectrumEnd.Largest, options).Eigenvalues[0];
        using (var twin = TinyConvNet.WithFixtureWeights())
        using (var hvp = new Hvp(twin, batches))
            twinTop = Lanczos.Run(hvp, 2, SpectrumEnd.Largest, options).Eigenvalues[0];
        // In float64: the copy comes from loading the archive again and converting the script in place.
        using (var script = TorchScriptModel.Load(Fixture("tiny_convnet.pt")))
        using (var hvp = new Hvp(script, batches, new LandscapeOptions
               {
                   ComputeType = ScalarType.Float64,
                   ModelFactory = () => TorchScriptModel.Load(Fixture("tiny_convnet.pt")),
               }))
        {
            Assert.Equal(ScalarType.Float64, hvp.Dtype);
            scriptTop64 = Lanczos.Run(hvp, 2, SpectrumEnd.Largest, options with { Tolerance = 1e-9 }).Eigenvalues[0];
        }
        var reference = Reference()["top_eigenvalue"];
        TestContext.Current.TestOutputHelper?.WriteLine(FormattableString.Invariant(
            $"top Hessian eigenvalue: TorchScript fixture {scriptTop:R} (float32), {scriptTop64:R} (float64); C# twin {twinTop:R} (float32); PyTorch 1.13 float64 dense {reference:R}"));
        Assert.True(Math.Abs(scriptTop - twinTop) < 1e-5 * reference, $"script {scriptTop} vs twin {twinTop}");
        Assert.True(Math.Abs(scriptTop - reference) < 1e-4 * reference, $"script {scriptTop} vs PyTorch {reference}");
        Assert.True(Math.Abs(scriptTop64 - reference) < 1e-8 * reference, $"script in float64 {scriptTop64} vs PyTorch {reference}");
    }
}
