using System.Text.Json.Serialization;

namespace WideValley.Optim;

/// <summary>
/// The hyper-parameters of one optimizer, as a typed record registered with <see cref="OptimizerFactory"/>. Each
/// optimizer has its own record (<see cref="SgdOptions"/>, <see cref="AdamOptions"/>, ...) whose defaults are the
/// optimizer's defaults, whose <see cref="Validate"/> names the offending property, and whose JSON form (snake_case
/// property names) is what run configurations and checkpoints store.
/// </summary>
public abstract record OptimizerOptionsBase
{
    /// <summary>The (initial) learning rate; schedules scale it.</summary>
    public abstract double LearningRate { get; init; }

    /// <summary>Throws <see cref="OptionsException"/> naming the first invalid property.</summary>
    public abstract void Validate();
}

/// <summary>
/// Options of an optimizer built around the local-entropy estimator (Entropy-SGD, Entropy-Adam): lets callers read
/// the estimator's settings without knowing which outer optimizer uses them.
/// </summary>
public interface ILocalEntropyOptimizerOptions
{
    /// <summary>The estimator's settings.</summary>
    LocalEntropyOptions LocalEntropy { get; }

    /// <summary>The same options with the estimator's settings replaced.</summary>
    OptimizerOptionsBase WithLocalEntropy(LocalEntropyOptions localEntropy);
}

/// <summary>What a run knows and an optimizer may need beyond its options.</summary>
public sealed record OptimizerContext
{
    /// <summary>Training-set size N (SGLD scales its noise by it); 0 = unknown.</summary>
    public long TrainingSetSize { get; init; }

    /// <summary>
    /// The run's seed: optimizers with random generators of their own derive their streams from it. Null = use the
    /// seed in the options record.
    /// </summary>
    public long? RunSeed { get; init; }

    /// <summary>Optimizer steps in one epoch of the run (DANTE's default block length); 0 = unknown.</summary>
    public long StepsPerEpoch { get; init; }

    /// <summary>The model being trained, for optimizers that must see its buffers (SAM keeps BatchNorm statistics from its second pass); null = not given.</summary>
    public TorchSharp.torch.nn.Module? Model { get; init; }

    /// <summary>
    /// The ranks this run is spread over, for optimizers that couple replicas (Parle, Elastic-SGD); null = one process.
    /// Data-parallel training does not need it: the trainer averages gradients before any optimizer sees them.
    /// </summary>
    public Distributed.ICollectives? Collectives { get; init; }
}
