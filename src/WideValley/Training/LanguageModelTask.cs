using TorchSharp;
using WideValley.Data;
using WideValley.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Training;

/// <summary>
/// Next-token prediction with truncated back-propagation through time: contiguous BPTT windows, the hidden state carried
/// (detached) from one window to the next and reset at the start of every pass. Loss is the mean cross-entropy per
/// token; evaluation reports perplexity = exp(mean loss).
/// </summary>
public sealed class LanguageModelTask : ITrainingTask
{
    readonly nn.Module _module;
    readonly IRecurrentLanguageModel _model;
    readonly TokenCorpus _corpus;
    readonly BpttStream _train;
    readonly int _evalBatchSize;
    readonly int _unroll;
    readonly bool _ownsData;
    readonly Device _device;
    RecurrentState? _state, _windowStart;
    readonly DataShard _shard;
    readonly int _shardBatchSize;

    /// <summary>
    /// Trains a recurrent language model on <paramref name="corpus"/>: <paramref name="batchSize"/> rows, BPTT windows of
    /// <paramref name="unroll"/> tokens, state carried across windows; evaluation in rows of <paramref name="evalBatchSize"/>
    /// (default: the batch size). With <paramref name="ownsData"/>, disposing the task disposes the corpus.
    /// </summary>
    /// <exception cref="ArgumentException">The model's vocabulary is not the corpus's, or the batch leaves rows too short for
    /// one window of <paramref name="unroll"/> (<see cref="ValidateBatchAgainstCorpus"/>).</exception>
    /// <remarks>
    /// With a <paramref name="shard"/> of K ranks (data-parallel training) the training tokens are cut into K x
    /// <paramref name="batchSize"/> rows, as one process with K times the batch cuts them, and this rank trains on rows
    /// [r b, (r + 1) b) of every window and carries their hidden state: the ranks together take that process's steps.
    /// </remarks>
    public LanguageModelTask(nn.Module model, TokenCorpus corpus, int batchSize, int unroll, Device device,
        int? evalBatchSize = null, bool ownsData = true, DataShard? shard = null)
    {
        _shard = shard ?? DataShard.Whole;
        if (_shard.Size < 1 || _shard.Rank < 0 || _shard.Rank >= _shard.Size)
            throw new ArgumentOutOfRangeException(nameof(shard), shard, "a data shard is rank r of K ranks, 0 <= r < K");
        _shardBatchSize = batchSize;
        _module = model;
        _model = model as IRecurrentLanguageModel
                 ?? throw new ArgumentException($"model {model.GetName()} is not a recurrent language model", nameof(model));
        if (_model.VocabularySize != corpus.Vocabulary.Count)
            throw new ArgumentException(
                $"the model predicts {_model.VocabularySize} tokens but the corpus '{corpus.Name}' has a vocabulary of {corpus.Vocabulary.Count}");
        var rows = checked(batchSize * _shard.Size);
        ValidateBatchAgainstCorpus(corpus.Train.shape[0], rows, unroll, corpus.Name);
        _corpus = corpus;
        _device = device;
        _train = new BpttStream(corpus.Train.to(device), rows, unroll, $"{corpus.Name} training tokens");
        _evalBatchSize = evalBatchSize ?? batchSize;
        _unroll = unroll;
        _ownsData = ownsData;
    }

    /// <summary>
    /// Refuses a batch that cuts the training tokens into rows too short for one full BPTT window: the stream is cut
    /// into <paramref name="batchSize"/> rows of tokens / batch each, and a window of <paramref name="unroll"/> inputs
    /// needs unroll + 1 tokens in its row (the inputs and their next-token targets). With fewer, every window would be
    /// silently shorter than the unroll asked for. The message names the corpus's tokens, the batch, the tokens per
    /// row and the unroll, and the largest batch and unroll that fit.
    /// </summary>
    /// <exception cref="ArgumentException">A row holds fewer than unroll + 1 tokens.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batchSize"/> or <paramref name="unroll"/> is below 1.</exception>
    public static void ValidateBatchAgainstCorpus(long trainingTokens, int batchSize, int unroll, string corpusName)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(unroll, 1);
        var perRow = trainingTokens / batchSize;
        if (perRow >= (long)unroll + 1) return;
        var largestBatch = trainingTokens / ((long)unroll + 1);
        var fixes = new List<string>();
        if (largestBatch >= 1) fixes.Add($"--batch-size {largestBatch:N0} or less");
        if (perRow >= 2) fixes.Add($"--unroll {perRow - 1:N0} or less");
        fixes.Add("a longer corpus");
        throw new ArgumentException(
            $"the training text of '{corpusName}' has {trainingTokens:N0} tokens; cut into --batch-size {batchSize:N0} streams that is " +
            $"{perRow:N0} tokens per stream, too few for one window of --unroll {unroll:N0} (it needs {(long)unroll + 1:N0}: the inputs and " +
            $"their next-token targets), so every window would be silently shorter; use {string.Join(", or ", fixes)}");
    }

    /// <inheritdoc/>
    public nn.Module Model => _module;
    /// <inheritdoc/>
    public bool IsLanguageModel => true;
    /// <inheritdoc/>
    public double MinibatchesPerPass => _train.WindowsPerPass;
    /// <inheritdoc/>
    public long TrainingSize => _corpus.Train.shape[0];
    /// <inheritdoc/>
    public bool HasValidation => _corpus.Validation.shape[0] > 1;
    /// <summary>The corpus.</summary>
    public TokenCorpus Corpus => _corpus;

    /// <inheritdoc/>
    public MinibatchLoss NextTrainingLoss()
    {
        var (inputs, targets, startsPass) = _train.Next(_shard.Rank * _shardBatchSize, _shardBatchSize);
        if (startsPass) { _state?.Dispose(); _state = null; }
        // The generator's state before the forward pass, so that a re-evaluation draws the same dropout masks.
        var randomBefore = random.get_rng_state();
        var (logits, hidden, cell) = _model.Forward(inputs, _state);
        var old = _state;
        _state = new RecurrentState(hidden.detach().clone(), cell.detach().clone());
        // The state this window started from stays alive until the next window, for a re-evaluation (SAM's second pass).
        _windowStart?.Dispose();
        _windowStart = old;
        var flatLogits = logits.reshape(-1, logits.shape[^1]);
        var flatTargets = targets.reshape(-1);
        var loss = F.cross_entropy(flatLogits, flatTargets);
        long errors;
        using (no_grad())
            errors = flatLogits.argmax(1).ne(flatTargets).sum().item<long>();
        return new MinibatchLoss(loss, loss.ToDouble(), errors, flatTargets.shape[0], () =>
        {
            using var randomNow = random.get_rng_state();
            random.set_rng_state(randomBefore);
            try
            {
                var (again, _, _) = _model.Forward(inputs, old);
                return F.cross_entropy(again.reshape(-1, again.shape[^1]), flatTargets);
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
        var tokens = split switch
        {
            EvaluationSplit.Train => _corpus.Train,
            EvaluationSplit.Validation => _corpus.Validation,
            _ => _corpus.Test,
        };
        return TaskHelpers.Evaluating(_module, () =>
        {
            // Small evaluation sets may not fill the training batch size; fall back to fewer rows.
            var rows = (int)Math.Max(1, Math.Min(_evalBatchSize, (tokens.shape[0] - 1) / 2));
            using var stream = new BpttStream(tokens.to(_device), rows, _unroll, $"{_corpus.Name} {split} tokens");
            double nll = 0;
            long count = 0, errors = 0;
            RecurrentState? state = null;
            try
            {
                foreach (var (x, y) in stream.OnePass())
                {
                    using var scope = NewDisposeScope();
                    var (logits, hidden, cell) = _model.Forward(x, state);
                    state?.Dispose();
                    state = new RecurrentState(hidden.clone(), cell.clone());
                    var flat = logits.reshape(-1, logits.shape[^1]);
                    var target = y.reshape(-1);
                    nll += F.cross_entropy(flat, target, reduction: nn.Reduction.Sum).ToDouble();
                    errors += flat.argmax(1).ne(target).sum().item<long>();
                    count += target.shape[0];
                }
            }
            finally
            {
                state?.Dispose();
            }
            var mean = nll / count;
            return new Evaluation(mean, 100.0 * errors / count, count, Math.Exp(mean));
        });
    }

    /// <summary>Recurrent models here have no normalisation statistics, but feeding is still well defined.</summary>
    public void FeedTrainingData(int maxMinibatches)
    {
        using var noGrad = no_grad();
        RecurrentState? state = null;
        var fed = 0;
        try
        {
            foreach (var (x, _) in _train.OnePass())
            {
                if (maxMinibatches > 0 && fed++ >= maxMinibatches) break;
                using var scope = NewDisposeScope();
                var (_, h, c) = _model.Forward(x, state);
                state?.Dispose();
                state = new RecurrentState(h.clone(), c.clone());
            }
        }
        finally
        {
            state?.Dispose();
        }
    }

    /// <inheritdoc/>
    public void SaveState(BinaryWriter writer)
    {
        TaskHelpers.WritePosition(writer, _train.Position);
        writer.Write(_state is not null);
        if (_state is not null)
        {
            // Save copies a non-CPU tensor to the CPU itself and disposes the copy.
            _state.Hidden.Save(writer);
            _state.Cell.Save(writer);
        }
    }

    /// <inheritdoc/>
    public void LoadState(BinaryReader reader)
    {
        _train.Position = TaskHelpers.ReadPosition(reader);
        _state?.Dispose();
        _state = null;
        _windowStart?.Dispose();
        _windowStart = null;
        if (reader.ReadBoolean())
        {
            // The static Load creates each tensor with the shape stored in the file; loading into an existing tensor
            // would demand that it already has that shape.
            using var h = TensorExtensionMethods.Load(reader);
            using var c = TensorExtensionMethods.Load(reader);
            _state = new RecurrentState(h.to(_device, copy: true), c.to(_device, copy: true));
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _state?.Dispose();
        _windowStart?.Dispose();
        _train.Dispose();
        if (_ownsData) _corpus.Dispose();
    }
}
