using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// Evaluates the loss (and its gradient) at x + delta for the sharpness measures, counting the passes over the
/// evaluation set, reporting progress, checking cancellation, and putting the weights back bit for bit when disposed
/// (also after an exception).
/// </summary>
internal sealed class SharpnessRunner : IDisposable
{
    private readonly LandscapeLoss loss;
    private readonly string where;
    private readonly string method;
    private readonly Tensor point;
    private readonly IProgress<CurvatureProgress>? progress;
    private readonly CancellationToken cancellation;
    private readonly Stopwatch watch = Stopwatch.StartNew();
    private bool evaluated;

    public SharpnessRunner(LandscapeLoss loss, SharpnessOptionsBase options, string where, string method, long expectedEvaluations)
    {
        this.loss = loss;
        this.where = where;
        this.method = method;
        progress = options.Progress;
        cancellation = options.Cancellation;
        ExpectedEvaluations = expectedEvaluations;
        Origin = loss.GetFlat();
        // Refused before anything is measured: a perturbation of NaN weights measures nothing.
        FiniteChecks.RequireFiniteFlat(Origin, loss.Layout, "the model", where);
        point = Origin.clone();
    }

    /// <summary>x: the selected parameters as they were, flat, in the working type.</summary>
    public Tensor Origin { get; }

    /// <summary>Loss-only passes so far.</summary>
    public long Forwards { get; private set; }

    /// <summary>Loss-and-gradient passes so far.</summary>
    public long Gradients { get; private set; }

    /// <summary>The total progress reports to expect (may be an estimate).</summary>
    public long ExpectedEvaluations { get; set; }

    /// <summary>Mean loss and error (percent) at x + delta (x itself when delta is null).</summary>
    public (double Loss, double ErrorPercent) Evaluate(Tensor? delta, string at)
    {
        MoveTo(delta);
        var result = Guard(loss.Evaluate);
        Forwards++;
        FiniteChecks.RequireFinite(result.Loss, $"loss at {at}", where);
        Report();
        return result;
    }

    /// <summary>Gradient at x + delta into <paramref name="gradient"/>; returns the mean loss there.</summary>
    public double Gradient(Tensor? delta, Tensor gradient, string at)
    {
        MoveTo(delta);
        var value = Guard(() => loss.Gradient(gradient));
        Gradients++;
        FiniteChecks.RequireFinite(value, $"loss at {at}", where);
        Report();
        return value;
    }

    private void MoveTo(Tensor? delta)
    {
        cancellation.ThrowIfCancellationRequested();
        using (no_grad())
        {
            point.copy_(Origin);
            if (delta is not null) point.Accumulate_(delta);
        }
        loss.SetFlat(point);
    }

    /// <summary>The first evaluation is where an evaluation set that does not fit the model shows: say so plainly.</summary>
    private T Guard<T>(Func<T> body)
    {
        if (evaluated) return body();
        try
        {
            var result = body();
            evaluated = true;
            return result;
        }
        catch (ExternalException e)
        {
            throw new ArgumentException(
                $"{where}: the evaluation set does not fit the model: evaluating the loss at the unperturbed weights failed in libtorch " +
                $"(check the inputs' shape against the model's input layer and the labels against its outputs): {FirstLine(e.Message)}", e);
        }
    }

    private static string FirstLine(string message)
    {
        var end = message.IndexOf('\n');
        return end < 0 ? message : message[..end];
    }

    private void Report()
    {
        var done = Forwards + Gradients;
        progress?.Report(new CurvatureProgress(method, done, Math.Max(done, ExpectedEvaluations), watch.Elapsed));
    }

    /// <summary>Puts the weights back exactly as they were.</summary>
    public void Dispose()
    {
        try
        {
            loss.SetFlat(Origin);
        }
        finally
        {
            point.Dispose();
            Origin.Dispose();
        }
    }

    /// <summary>A generator for draw <paramref name="index"/> of a measure seeded with <paramref name="seed"/> (SplitMix64 of both).</summary>
    public static Generator DrawGenerator(long seed, long index)
    {
        var z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index + 0x632BE59BD9B4E019UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return new Generator(z);
    }
}
