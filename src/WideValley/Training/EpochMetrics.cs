using System.Text.Json;
using System.Text.Json.Serialization;

namespace WideValley.Training;

/// <summary>
/// One line of metrics.jsonl. Errors are percentages; losses are mean cross-entropy in nats per sample (or per token
/// for language models, where perplexities are exp of those losses). Training loss and error are averages over the
/// minibatches the optimizer drew during the epoch, measured at the weights the gradients were taken at.
/// </summary>
public sealed class EpochMetrics
{
    /// <summary>The epoch (1-based).</summary>
    public int Epoch { get; set; }
    /// <summary>Gradient evaluations so far / minibatches per pass.</summary>
    public double EffectiveEpochs { get; set; }
    /// <summary>Gradient evaluations (closure calls) so far.</summary>
    public long GradEvals { get; set; }
    /// <summary>Optimizer steps so far.</summary>
    public long OuterSteps { get; set; }
    /// <summary>The first parameter group's learning rate during the epoch.</summary>
    public double Lr { get; set; }
    /// <summary>Mean loss of the minibatches drawn during the epoch.</summary>
    public double TrainLoss { get; set; }
    /// <summary>Error (%) of those minibatches.</summary>
    public double TrainError { get; set; }
    /// <summary>exp(<see cref="TrainLoss"/>), for language models.</summary>
    public double? TrainPerplexity { get; set; }
    /// <summary>Validation loss at the end-of-epoch weights (eval mode), if there is a validation split.</summary>
    public double? ValLoss { get; set; }
    /// <summary>Validation error (%).</summary>
    public double? ValError { get; set; }
    /// <summary>Validation perplexity, for language models.</summary>
    public double? ValPerplexity { get; set; }
    /// <summary>Test loss at the end-of-epoch weights (eval mode).</summary>
    public double? TestLoss { get; set; }
    /// <summary>Test error (%).</summary>
    public double? TestError { get; set; }
    /// <summary>Test perplexity, for language models.</summary>
    public double? TestPerplexity { get; set; }
    /// <summary>Loss and error over the whole training set at the end-of-epoch weights (only with --eval-train).</summary>
    public double? TrainEvalLoss { get; set; }
    /// <summary>Error (%) over the whole training set at the end-of-epoch weights (only with --eval-train).</summary>
    public double? TrainEvalError { get; set; }
    /// <summary>Wall time of this epoch (training, recalibration and evaluation).</summary>
    public double Seconds { get; set; }
    /// <summary>Wall time since the run started, summed over resumed sessions.</summary>
    public double TotalSeconds { get; set; }
    /// <summary>
    /// True for an evaluation inside an epoch (<see cref="TrainerOptions.EvaluateEveryEffectiveEpochs"/>): <see cref="Epoch"/>
    /// is the epoch in progress, the training loss and error average the epoch's minibatches so far, and no optimizer
    /// diagnostics are taken. Null (not written) for the end-of-epoch line.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? WithinEpoch { get; set; }
    /// <summary>Optimizer diagnostics (see IOptimizerDiagnostics), written as top-level fields.</summary>
    [JsonExtensionData]
    public Dictionary<string, object>? Extra { get; set; }

    /// <summary>snake_case names, NaN and infinities allowed, nulls written.</summary>
    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>One metrics.jsonl line.</summary>
    public string ToJsonLine() => JsonSerializer.Serialize(this, Json);
    /// <summary>Reads one metrics.jsonl line.</summary>
    public static EpochMetrics FromJsonLine(string line) =>
        JsonSerializer.Deserialize<EpochMetrics>(line, Json) ?? throw new JsonException("empty metrics line");
}
