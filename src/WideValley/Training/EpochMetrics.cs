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
    public int Epoch { get; set; }
    public double EffectiveEpochs { get; set; }
    public long GradEvals { get; set; }
    public long OuterSteps { get; set; }
    public double Lr { get; set; }
    public double TrainLoss { get; set; }
    public double TrainError { get; set; }
    public double? TrainPerplexity { get; set; }
    public double? ValLoss { get; set; }
    public double? ValError { get; set; }
    public double? ValPerplexity { get; set; }
    public double? TestLoss { get; set; }
    public double? TestError { get; set; }
    public double? TestPerplexity { get; set; }
    /// <summary>Loss and error over the whole training set at the end-of-epoch weights (only with --eval-train).</summary>
    public double? TrainEvalLoss { get; set; }
    public double? TrainEvalError { get; set; }
    /// <summary>Wall time of this epoch (training, recalibration and evaluation).</summary>
    public double Seconds { get; set; }
    /// <summary>Wall time since the run started, summed over resumed sessions.</summary>
    public double TotalSeconds { get; set; }
    /// <summary>Optimizer diagnostics (see IOptimizerDiagnostics), written as top-level fields.</summary>
    [JsonExtensionData]
    public Dictionary<string, object>? Extra { get; set; }

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public string ToJsonLine() => JsonSerializer.Serialize(this, Json);
    public static EpochMetrics FromJsonLine(string line) =>
        JsonSerializer.Deserialize<EpochMetrics>(line, Json) ?? throw new JsonException("empty metrics line");
}
