using TorchSharp;
using WideValley.Data;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Training;

/// <summary>
/// Supervised classification with cross-entropy: minibatches from an in-memory <see cref="MinibatchStream"/>,
/// evaluation by error rate.
/// </summary>
public sealed class ClassificationTask : ITrainingTask
{
    readonly nn.Module<Tensor, Tensor> _model;
    readonly ClassificationDataset _data;
    readonly MinibatchStream _stream;
    readonly int _evalBatchSize;
    readonly bool _ownsData;
    readonly DataShard _shard;
    readonly int _shardBatchSize;

    /// <summary>
    /// Trains <paramref name="model"/> on <paramref name="data"/> in minibatches of <paramref name="batchSize"/>, shuffled by
    /// <paramref name="seed"/>; evaluates <paramref name="evalBatchSize"/> samples per forward pass. With
    /// <paramref name="ownsData"/>, disposing the task disposes the data. With a <paramref name="shard"/> of K ranks
    /// (data-parallel training), the stream is the one a single process would draw with batches of K x
    /// <paramref name="batchSize"/>, and this rank trains on rows [rank x batchSize, (rank + 1) x batchSize) of each.
    /// </summary>
    public ClassificationTask(nn.Module<Tensor, Tensor> model, ClassificationDataset data, int batchSize, long seed,
        int evalBatchSize = 1000, bool ownsData = true, DataShard? shard = null)
    {
        _model = model;
        _data = data;
        _shard = shard ?? DataShard.Whole;
        if (_shard.Size < 1 || _shard.Rank < 0 || _shard.Rank >= _shard.Size)
            throw new ArgumentOutOfRangeException(nameof(shard), shard, "a data shard is rank r of K ranks, 0 <= r < K");
        _shardBatchSize = batchSize;
        _stream = new MinibatchStream(data.Train, checked(batchSize * _shard.Size), seed);
        _evalBatchSize = evalBatchSize;
        _ownsData = ownsData;
    }

    /// <inheritdoc/>
    public nn.Module Model => _model;
    /// <inheritdoc/>
    public bool IsLanguageModel => false;
    /// <inheritdoc/>
    public double MinibatchesPerPass => _stream.MinibatchesPerPass;
    /// <inheritdoc/>
    public long TrainingSize => _data.Train.Count;
    /// <inheritdoc/>
    public bool HasValidation => _data.Validation is not null;
    /// <summary>The dataset.</summary>
    public ClassificationDataset Data => _data;
    /// <summary>Which rows of each global minibatch this process trains on (<see cref="DataShard.Whole"/> outside data-parallel runs).</summary>
    public DataShard Shard => _shard;
    /// <summary>The training minibatch stream (of global minibatches when <see cref="Shard"/> has several ranks).</summary>
    public MinibatchStream Stream => _stream;

    /// <inheritdoc/>
    public MinibatchLoss NextTrainingLoss()
    {
        // Every global minibatch has exactly K x b rows (the stream straddles passes instead of cutting one short), and
        // this rank gathers only its b of them.
        var (x, y) = _stream.Next((long)_shard.Rank * _shardBatchSize, _shardBatchSize);
        // The generator's state before the forward pass, so that a re-evaluation draws the same dropout masks.
        var randomBefore = random.get_rng_state();
        var logits = _model.forward(x);
        var loss = F.cross_entropy(logits, y);
        long errors;
        using (no_grad())
            errors = logits.argmax(1).ne(y).sum().item<long>();
        return new MinibatchLoss(loss, loss.ToDouble(), errors, y.shape[0], () =>
        {
            using var randomNow = random.get_rng_state();
            random.set_rng_state(randomBefore);
            try
            {
                return F.cross_entropy(_model.forward(x), y);
            }
            finally
            {
                random.set_rng_state(randomNow);
            }
        });
    }

    /// <inheritdoc/>
    public Evaluation Evaluate(EvaluationSplit split)
    {
        var set = split switch
        {
            EvaluationSplit.Train => _data.Train,
            EvaluationSplit.Validation => _data.Validation ?? throw new InvalidOperationException("this dataset has no validation split"),
            _ => _data.Test,
        };
        return TaskHelpers.Evaluating(_model, () =>
        {
            double lossSum = 0;
            long errors = 0;
            foreach (var (x, y) in Batches.InOrder(set, _evalBatchSize))
            {
                using var scope = NewDisposeScope();
                var logits = _model.forward(x);
                lossSum += F.cross_entropy(logits, y, reduction: nn.Reduction.Sum).ToDouble();
                errors += logits.argmax(1).ne(y).sum().item<long>();
            }
            return new Evaluation(lossSum / set.Count, 100.0 * errors / set.Count, set.Count, null);
        });
    }

    /// <inheritdoc/>
    public void FeedTrainingData(int maxMinibatches)
    {
        using var noGrad = no_grad();
        var fed = 0;
        foreach (var (x, _) in Batches.InOrder(_data.Train, _stream.BatchSize))
        {
            if (maxMinibatches > 0 && fed++ >= maxMinibatches) break;
            using var scope = NewDisposeScope();
            _model.forward(x);
        }
    }

    /// <inheritdoc/>
    public void SaveState(BinaryWriter writer) => TaskHelpers.WritePosition(writer, _stream.Position);
    /// <inheritdoc/>
    public void LoadState(BinaryReader reader) => _stream.Position = TaskHelpers.ReadPosition(reader);

    /// <inheritdoc/>
    public void Dispose()
    {
        _stream.Dispose();
        if (_ownsData) _data.Dispose();
    }
}

/// <summary>
/// This process's part of each global minibatch in data-parallel training: rank <see cref="Rank"/> of
/// <see cref="Size"/> takes the <see cref="Rank"/>-th of <see cref="Size"/> equal slices.
/// </summary>
/// <param name="Rank">The slice, 0 to <see cref="Size"/> - 1.</param>
/// <param name="Size">The number of slices (ranks); 1 = the whole minibatch.</param>
public readonly record struct DataShard(int Rank, int Size)
{
    /// <summary>The whole minibatch (a single process).</summary>
    public static DataShard Whole => new(0, 1);
}
