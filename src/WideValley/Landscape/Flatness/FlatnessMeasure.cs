using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace WideValley.Landscape.Flatness;

/// <summary>How a measure behaves under the rescaling of ReLU layers of Dinh et al. 2017 (W1 -> a W1, b1 -> a b1, W2 -> W2 / a), which leaves the network's function unchanged.</summary>
public enum ReluRescaling
{
    /// <summary>The measure does not move: it depends on the function only, or normalises its directions filter by filter.</summary>
    Invariant,

    /// <summary>The measure moves: it depends on the parametrisation (Euclidean geometry in weight space).</summary>
    NotInvariant,
}

/// <summary>Which way a value points when the minimum is flatter.</summary>
public enum FlatterWhen
{
    /// <summary>A lower value means a flatter (wider) minimum: curvature, sharpness, loss rise along a slice.</summary>
    Lower,

    /// <summary>A higher value means a flatter minimum: local entropy, the fraction of near-zero eigenvalues.</summary>
    Higher,

    /// <summary>Not a flatness measure (losses, errors, the generalisation gap): reported, never judged.</summary>
    NotJudged,
}

/// <summary>
/// The work of a measure in the units the runner times before measuring: Hessian-vector products over the evaluation
/// set, forward passes over it (one loss evaluation), gradients over it, per-sample gradients (each one sample's
/// backward pass) and Gauss-Newton-vector products over it.
/// </summary>
/// <param name="Hvps">Hessian-vector products over the evaluation set.</param>
/// <param name="ForwardPasses">Loss evaluations over the evaluation set (test-set passes are counted in evaluation-set sizes).</param>
/// <param name="Gradients">Gradients of the loss over the evaluation set.</param>
/// <param name="SampleGradients">Single-sample gradients (the empirical Fisher's per-sample rows).</param>
/// <param name="GaussNewtonProducts">
/// Gauss-Newton-vector products over the evaluation set: a forward pass and four backward passes, two of them through
/// a backward graph, so one costs more than an HVP (about 1.7 on LeNet) and is timed as its own unit.
/// </param>
public sealed record MeasureCost(double Hvps, double ForwardPasses, double Gradients, double SampleGradients = 0, double GaussNewtonProducts = 0)
{
    /// <summary>No work.</summary>
    public static MeasureCost None { get; } = new(0, 0, 0);

    /// <summary>The sum of two costs.</summary>
    public static MeasureCost operator +(MeasureCost a, MeasureCost b) =>
        new(a.Hvps + b.Hvps, a.ForwardPasses + b.ForwardPasses, a.Gradients + b.Gradients, a.SampleGradients + b.SampleGradients,
            a.GaussNewtonProducts + b.GaussNewtonProducts);

    /// <summary>Seconds this work takes at the measured unit times.</summary>
    public double Seconds(UnitTimes times)
    {
        ArgumentNullException.ThrowIfNull(times);
        return Hvps * times.HvpSeconds + ForwardPasses * times.ForwardSeconds + Gradients * times.GradientSeconds
            + SampleGradients * times.SampleGradientSeconds + GaussNewtonProducts * times.GaussNewtonSeconds;
    }

    /// <summary>One line: "120 HVPs, 30 forward passes, 0 gradients" (per-sample gradients and Gauss-Newton products when there are any).</summary>
    public override string ToString() =>
        FormattableString.Invariant($"{Hvps:N0} HVPs, {ForwardPasses:N0} forward passes, {Gradients:N0} gradients") +
        (SampleGradients > 0 ? FormattableString.Invariant($", {SampleGradients:N0} per-sample gradients") : "") +
        (GaussNewtonProducts > 0 ? FormattableString.Invariant($", {GaussNewtonProducts:N0} Gauss-Newton products") : "");
}

/// <summary>Measured seconds of one unit of work on one model's evaluation set (see <see cref="MeasureCost"/>).</summary>
/// <param name="HvpSeconds">One Hessian-vector product over the evaluation set.</param>
/// <param name="ForwardSeconds">One loss evaluation over the evaluation set.</param>
/// <param name="GradientSeconds">One gradient over the evaluation set.</param>
/// <param name="SampleGradientSeconds">One single-sample gradient.</param>
/// <param name="GaussNewtonSeconds">One Gauss-Newton-vector product over the evaluation set.</param>
public sealed record UnitTimes(double HvpSeconds, double ForwardSeconds, double GradientSeconds, double SampleGradientSeconds, double GaussNewtonSeconds);

/// <summary>One number a measure reports.</summary>
/// <param name="Name">Stable key, e.g. "lambda_max" (the JSON and CSV name).</param>
/// <param name="Label">Readable label for the report, e.g. "Hessian λ_max".</param>
/// <param name="Value">The value (NaN when it could not be computed).</param>
/// <param name="StandardError">Its standard error, or null when the estimator has none.</param>
/// <param name="Flatter">Which way is flatter, or <see cref="FlatterWhen.NotJudged"/>.</param>
public sealed record FlatnessValue(string Name, string Label, double Value, double? StandardError, FlatterWhen Flatter);

/// <summary>What a report may draw from a table.</summary>
public enum FlatnessPlotKind
{
    /// <summary>Only written as CSV.</summary>
    None,

    /// <summary>Lines: the first column is x, every other column a curve.</summary>
    Line,

    /// <summary>A spectral density: columns "lambda" and "density".</summary>
    Density,

    /// <summary>A surface: columns "alpha", "beta" and "loss" on a square grid, alpha fastest.</summary>
    Surface,

    /// <summary>A list of eigenvalues: column "eigenvalue".</summary>
    Spectrum,
}

/// <summary>A named column of numbers.</summary>
/// <param name="Name">Column name (CSV header).</param>
/// <param name="Values">The numbers.</param>
public sealed record FlatnessColumn(string Name, double[] Values);

/// <summary>A table a measure produces (per-layer traces, a density, a slice): written as CSV and drawn as <see cref="Plot"/> says.</summary>
/// <param name="Name">File-name part, e.g. "layers" (the CSV is MEASURE-NAME.csv).</param>
/// <param name="Title">Title of its plot and section.</param>
/// <param name="Plot">How to draw it.</param>
/// <param name="Columns">Columns of equal length.</param>
/// <param name="Labels">Row labels (e.g. layer names), or null.</param>
public sealed record FlatnessTable(string Name, string Title, FlatnessPlotKind Plot, IReadOnlyList<FlatnessColumn> Columns, IReadOnlyList<string>? Labels = null);

/// <summary>A finished measurement of one model: its values, tables and the work it actually did.</summary>
public sealed record MeasureResult
{
    /// <summary>The measure's name.</summary>
    public required string Measure { get; init; }

    /// <summary>The reported numbers.</summary>
    public required IReadOnlyList<FlatnessValue> Values { get; init; }

    /// <summary>Tables for CSV files and plots.</summary>
    public IReadOnlyList<FlatnessTable> Tables { get; init; } = [];

    /// <summary>The work done, counted by the operators (compare with the estimate).</summary>
    public required MeasureCost Used { get; init; }

    /// <summary>Wall-clock seconds.</summary>
    public double Seconds { get; init; }

    /// <summary>Notes for the reader (e.g. "Lanczos did not converge").</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>What a measure gets to measure one model.</summary>
public sealed record FlatnessContext
{
    /// <summary>The network at the weights to measure; a measure restores the weights and modes it changes.</summary>
    public required nn.Module<Tensor, Tensor> Model { get; init; }

    /// <summary>The evaluation set (training samples): every curvature and slice is over it.</summary>
    public required IReadOnlyList<(Tensor Inputs, Tensor Labels)> Train { get; init; }

    /// <summary>Test samples for the generalisation gap, or null when the data has no test split.</summary>
    public IReadOnlyList<(Tensor Inputs, Tensor Labels)>? Test { get; init; }

    /// <summary>Loss, parameters, BatchNorm, dropout and compute type.</summary>
    public LandscapeOptions Landscape { get; init; } = new();

    /// <summary>The budget's parameters.</summary>
    public required FlatnessBudget Budget { get; init; }

    /// <summary>Seed of every random probe and direction.</summary>
    public long Seed { get; init; }

    /// <summary>Progress inside a measure (Lanczos steps, probes, slice points).</summary>
    public IProgress<CurvatureProgress>? Progress { get; init; }

    /// <summary>Stops a measure between operator applications or points.</summary>
    public CancellationToken Cancellation { get; init; }
}

/// <summary>Sizes of a model and its data that a cost estimate needs.</summary>
/// <param name="Parameters">Number of selected parameters n.</param>
/// <param name="TrainSamples">Samples of the evaluation set.</param>
/// <param name="TestSamples">Test samples (0 without a test set).</param>
public sealed record FlatnessModelSize(long Parameters, long TrainSamples, long TestSamples);

/// <summary>
/// One flatness measure: a name, whether it is invariant to ReLU rescaling, the budget parameters it uses, a cost
/// estimate in the runner's units and a run that returns its values with standard errors. Adding a measure is a class
/// implementing this and one line in <see cref="FlatnessMeasures.All"/>.
/// </summary>
public interface IFlatnessMeasure
{
    /// <summary>Stable name (file name of its stored result, JSON key), e.g. "hessian-trace".</summary>
    string Name { get; }

    /// <summary>Readable title for the report.</summary>
    string Title { get; }

    /// <summary>Whether it moves under the ReLU rescaling of Dinh et al. 2017.</summary>
    ReluRescaling Rescaling { get; }

    /// <summary>One sentence saying why it is or is not invariant.</summary>
    string RescalingReason { get; }

    /// <summary>The budget parameters this measure uses (stored with its result; a change of any of them redoes it).</summary>
    JsonObject Settings(FlatnessBudget budget);

    /// <summary>The work it will do on a model of this size at this budget (an upper bound where the method may stop early).</summary>
    MeasureCost Cost(FlatnessBudget budget, FlatnessModelSize size);

    /// <summary>Measures one model.</summary>
    MeasureResult Run(FlatnessContext context);
}

/// <summary>JSON settings shared by the flatness files.</summary>
public static class FlatnessJson
{
    /// <summary>Indented, NaN and infinities as named literals, enums as strings.</summary>
    public static System.Text.Json.JsonSerializerOptions Options { get; } = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter() },
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower,
    };
}
