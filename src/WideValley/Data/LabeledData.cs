using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>
/// Inputs and integer labels held as two tensors with the same first dimension, e.g. images (N, C, H, W) float32 and
/// labels (N) int64. Owns its tensors.
/// </summary>
public sealed class LabeledData : IDisposable
{
    /// <summary>The samples, first dimension N (e.g. images (N, C, H, W) float32).</summary>
    public Tensor Inputs { get; private set; }
    /// <summary>Class indices in [0, <see cref="NumClasses"/>), shape (N), int64.</summary>
    public Tensor Labels { get; private set; }
    /// <summary>Number of classes the labels index (at least 1).</summary>
    public int NumClasses { get; }
    /// <summary>N, the number of samples.</summary>
    public long Count => Labels.shape[0];

    /// <summary>Takes ownership of <paramref name="inputs"/> and <paramref name="labels"/> (they leave any dispose scope).</summary>
    /// <param name="inputs">The samples, first dimension N.</param>
    /// <param name="labels">Class indices, 1-D int64 of length N.</param>
    /// <param name="numClasses">Number of classes (at least 1).</param>
    /// <exception cref="ArgumentException">The first dimensions differ, the labels are not 1-D, or not int64.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="numClasses"/> is below 1.</exception>
    public LabeledData(Tensor inputs, Tensor labels, int numClasses)
    {
        if (inputs.shape.Length == 0 || labels.shape.Length != 1 || inputs.shape[0] != labels.shape[0])
            throw new ArgumentException(
                $"inputs {Shape(inputs)} and labels {Shape(labels)} must share their first dimension, labels 1-D");
        if (labels.dtype != ScalarType.Int64) throw new ArgumentException($"labels must be int64, got {labels.dtype}");
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "at least one class");
        Inputs = inputs.DetachFromDisposeScope();
        Labels = labels.DetachFromDisposeScope();
        NumClasses = numClasses;
    }

    /// <summary>The samples at <paramref name="indices"/> (int64, 1-D), as new tensors.</summary>
    public LabeledData Select(Tensor indices)
    {
        using var scope = NewDisposeScope();
        var idx = indices.to(Inputs.device);
        return new LabeledData(Inputs.index_select(0, idx).MoveToOuterDisposeScope(),
            Labels.index_select(0, idx).MoveToOuterDisposeScope(), NumClasses);
    }

    /// <summary>The first <paramref name="count"/> samples (or all if fewer).</summary>
    public LabeledData Take(long count)
    {
        var n = Math.Min(count, Count);
        return new LabeledData(Inputs.narrow(0, 0, n).clone(), Labels.narrow(0, 0, n).clone(), NumClasses);
    }

    /// <summary>
    /// Splits off a held-out set of <paramref name="heldOut"/> samples chosen by a seeded permutation; returns
    /// (remaining, held out). The same seed always yields the same split.
    /// </summary>
    public (LabeledData Remaining, LabeledData HeldOut) SplitOff(long heldOut, long seed)
    {
        if (heldOut <= 0 || heldOut >= Count)
            throw new ArgumentOutOfRangeException(nameof(heldOut), heldOut, $"must be between 1 and {Count - 1} (the set has {Count} samples)");
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed);
        var perm = randperm(Count, generator: gen);
        var rest = perm.narrow(0, heldOut, Count - heldOut).sort().Values;
        var held = perm.narrow(0, 0, heldOut).sort().Values;
        return (Select(rest), Select(held));
    }

    /// <summary>Moves (or copies) the tensors to <paramref name="device"/>.</summary>
    public LabeledData To(Device device)
    {
        if (Inputs.device == device) return this;
        var moved = new LabeledData(Inputs.to(device), Labels.to(device), NumClasses);
        return moved;
    }

    /// <summary>Frees the inputs and labels.</summary>
    public void Dispose()
    {
        Inputs.Dispose();
        Labels.Dispose();
    }

    static string Shape(Tensor t) => "(" + string.Join(", ", t.shape) + ")";
}

/// <summary>A classification dataset: training, optional validation and test parts, plus where it came from.</summary>
public sealed class ClassificationDataset : IDisposable
{
    /// <summary>Short name for reports and folders (e.g. "fashion-mnist").</summary>
    public required string Name { get; init; }
    /// <summary>The training part.</summary>
    public required LabeledData Train { get; init; }
    /// <summary>The validation part, when the dataset has one (null otherwise).</summary>
    public LabeledData? Validation { get; init; }
    /// <summary>The test part.</summary>
    public required LabeledData Test { get; init; }
    /// <summary>Where the data was read from (folder or files), for reports.</summary>
    public required string Source { get; init; }
    /// <summary>Human-readable note on preprocessing (e.g. "pixels scaled to [0,1]").</summary>
    public string Preprocessing { get; init; } = "";

    /// <summary>Number of classes (the training part's).</summary>
    public int NumClasses => Train.NumClasses;

    /// <summary>Shape of one input sample, e.g. [1, 28, 28].</summary>
    public long[] SampleShape => Train.Inputs.shape.Skip(1).ToArray();

    /// <summary>Frees the training, validation and test parts.</summary>
    public void Dispose()
    {
        Train.Dispose();
        Validation?.Dispose();
        Test.Dispose();
    }
}
