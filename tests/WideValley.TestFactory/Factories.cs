using TorchSharp;
using WideValley.TestFactory.Layers;
using TorchSharp.Modules;
using WideValley.Models;
using static TorchSharp.torch;

namespace WideValley.TestFactory;

/// <summary>make_fixture.py's TinyConvNet (its helpers in WideValley.TestFactory.Layers, a private dependency) (conv 4@5x5 stride 3, tanh, linear to the classes), sized from the context.</summary>
public sealed class TinyConvNetFactory : IModelFactory
{
    /// <inheritdoc/>
    public string Name => "tiny-convnet";

    /// <inheritdoc/>
    public nn.Module<Tensor, Tensor> Create(ModelFactoryContext context)
    {
        var shape = context.SampleShape ?? [1, 28, 28];
        var side = Features.OutputSide(shape[^1]);
        var model = new TinyConvNet(shape[0], 4 * side * side, context.NumClasses ?? 10);
        return model.to(context.Device).to(context.Dtype);
    }

    private sealed class TinyConvNet : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv;
        private readonly Linear fc;

        public TinyConvNet(long channels, long features, long classes) : base(nameof(TinyConvNet))
        {
            conv = nn.Conv2d(channels, 4, 5, stride: 3);
            fc = nn.Linear(features, classes);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            return fc.call(Features.TanhFlatten(conv.call(input))).MoveToOuterDisposeScope();
        }
    }
}

/// <summary>A public class that is not a factory, for the error message test.</summary>
public sealed class NotAFactory
{
}

/// <summary>A factory that cannot be created without arguments, for the error message test.</summary>
public sealed class FactoryWithArguments(int hidden) : IModelFactory
{
    /// <inheritdoc/>
    public string Name => $"mlp-{hidden}";

    /// <inheritdoc/>
    public nn.Module<Tensor, Tensor> Create(ModelFactoryContext context) => nn.Sequential(nn.Flatten(), nn.Linear(784, hidden));
}
