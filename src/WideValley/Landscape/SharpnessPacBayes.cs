using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

public static partial class Sharpness
{
    /// <summary>The PAC-Bayes flatness sigma' of Jiang et al. 2020 over (inputs, labels) batches.</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="evaluationSet">The batches the loss and error are the means over.</param>
    /// <param name="options">Criterion, threshold, samples, bracket, tolerance, magnitude-aware noise, seed, parameters.</param>
    /// <exception cref="ArgumentException">A setting out of range, an empty selection, an evaluation set that does not fit the
    /// model, or the Error criterion on outputs that are not (N, C) logits.</exception>
    /// <exception cref="NonFiniteValuesException">The weights, or the loss at a perturbed point, are not finite.</exception>
    /// <exception cref="OperationCanceledException">The options' Cancellation was cancelled; the weights are restored.</exception>
    public static PacBayesFlatnessResult PacBayes(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        PacBayesFlatnessOptions? options = null)
    {
        var o = options ?? new PacBayesFlatnessOptions();
        o.Validate();
        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, "Sharpness.PacBayes");
        return PacBayes(loss, o);
    }

    /// <summary>The PAC-Bayes flatness sigma' over a streamed loss (Loss criterion only: a streamed loss gives no error rate).</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="streamedLoss">(model, batch) -&gt; mean loss over re-enumerated batches.</param>
    /// <param name="options">Criterion (must be Loss), threshold, samples, bracket, tolerance, magnitude-aware noise, seed, parameters.</param>
    public static PacBayesFlatnessResult PacBayes(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, PacBayesFlatnessOptions? options = null)
    {
        var o = options ?? new PacBayesFlatnessOptions();
        o.Validate();
        if (o.Criterion == PacBayesCriterion.Error)
            throw new ArgumentException(
                "Sharpness.PacBayes: a streamed loss gives only the loss, not an error rate; set Criterion = PacBayesCriterion.Loss.", nameof(options));
        using var loss = new LandscapeLoss(model, streamedLoss, o.Landscape, "Sharpness.PacBayes");
        return PacBayes(loss, o);
    }

    /// <summary>
    /// Bisection for the largest sigma whose Monte Carlo mean increase of the criterion, over noise u = s(sigma) z with
    /// z ~ N(0, I), stays at or below the threshold; s(sigma) = sigma, or sqrt(sigma^2 x_i^2 + eps^2) when
    /// magnitude-aware. The same draws z_1..z_K (common random numbers) serve every sigma, so the estimated increase is
    /// a smooth function of sigma and the bisection does not chase fresh noise at every step.
    /// </summary>
    private static PacBayesFlatnessResult PacBayes(LandscapeLoss loss, PacBayesFlatnessOptions o)
    {
        const string where = "Sharpness.PacBayes";
        var perSigma = (long)o.Samples * (o.Antithetic ? 2 : 1);
        var expectedBisections = (int)Math.Ceiling(Math.Log2(1 / o.RelativeTolerance)) + 1;
        using var run = new SharpnessRunner(loss, o, where, o.MagnitudeAware ? "pac-bayes-sigma-magnitude" : "pac-bayes-sigma",
            1 + perSigma * (expectedBisections + 3));
        using var scope = NewDisposeScope();
        var n = loss.Layout.Dimension;
        var (lossAtStart, errorPercentAtStart) = run.Evaluate(null, "the unperturbed weights");
        var errorAtStart = errorPercentAtStart / 100;
        if (o.Criterion == PacBayesCriterion.Error && double.IsNaN(errorAtStart))
            throw new ArgumentException(
                $"{where}: the Error criterion needs (N, C) logits and int64 labels (N) to count errors; this model's outputs or labels are not. " +
                "Set Criterion = PacBayesCriterion.Loss.");
        var start = o.Criterion == PacBayesCriterion.Error ? errorAtStart : lossAtStart;
        var squaredWeights = o.MagnitudeAware ? run.Origin.square() : null;
        var noise = loss.NewVector();
        var scaleVector = loss.NewVector();

        // Mean increase, its standard error, the mean loss and the mean squared noise norm at sigma.
        (double Increase, double StandardError, double MeanLoss, double MeanSquaredNorm) Estimate(double sigma)
        {
            if (o.MagnitudeAware)
                using (no_grad())
                    scaleVector.copy_(squaredWeights!).Scale_(sigma * sigma).Shift_(o.MagnitudeEpsilon * o.MagnitudeEpsilon).sqrt_();
            var increases = new double[o.Samples];
            double lossSum = 0, normSum = 0;
            var evaluations = 0;
            for (var k = 0; k < o.Samples; k++)
            {
                using var inner = NewDisposeScope();
                using (var generator = SharpnessRunner.DrawGenerator(o.Seed, k))
                using (no_grad())
                {
                    noise.copy_(randn(n, ScalarType.Float64, generator: generator));
                    if (o.MagnitudeAware) noise.mul_(scaleVector);
                    else noise.Scale_(sigma);
                }
                var squaredNorm = Norm(noise);
                squaredNorm *= squaredNorm;
                var sum = 0.0;
                for (var sign = 0; sign < (o.Antithetic ? 2 : 1); sign++)
                {
                    if (sign == 1) using (no_grad()) noise.neg_();
                    var (l, errorPercent) = run.Evaluate(noise, $"sigma {sigma:G6}, draw {k}{(sign == 1 ? " (antithetic)" : "")}");
                    sum += o.Criterion == PacBayesCriterion.Error ? errorPercent / 100 - start : l - start;
                    lossSum += l;
                    normSum += squaredNorm;
                    evaluations++;
                }
                increases[k] = sum / (o.Antithetic ? 2 : 1);
            }
            var mean = increases.Average();
            var standardError = increases.Length > 1
                ? Math.Sqrt(increases.Sum(v => (v - mean) * (v - mean)) / (increases.Length - 1) / increases.Length)
                : double.NaN;
            return (mean, standardError, lossSum / evaluations, normSum / evaluations);
        }

        double low = o.SigmaLow, high = o.SigmaHigh;
        var outcome = BracketOutcome.Inside;
        var bisections = 0;
        if (Estimate(high).Increase <= o.Threshold)
        {
            outcome = BracketOutcome.AtLeastUpper;
            low = high;
        }
        else if (low > 0 && Estimate(low).Increase > o.Threshold)
        {
            outcome = BracketOutcome.AtMostLower;
            high = low;
        }
        else
        {
            while (high - low > o.RelativeTolerance * high)
            {
                var middle = 0.5 * (low + high);
                if (Estimate(middle).Increase <= o.Threshold) low = middle;
                else high = middle;
                bisections++;
            }
        }
        var sigmaPrime = outcome switch
        {
            BracketOutcome.AtLeastUpper => o.SigmaHigh,
            BracketOutcome.AtMostLower => o.SigmaLow,
            _ => 0.5 * (low + high),
        };
        var final = Estimate(sigmaPrime);
        return new PacBayesFlatnessResult(o.MagnitudeAware ? "pac-bayes-sigma-magnitude" : "pac-bayes-sigma", sigmaPrime, 1 / (sigmaPrime * sigmaPrime),
            o.Criterion, o.Threshold, lossAtStart, errorAtStart, final.MeanLoss, final.Increase, final.StandardError, o.Samples, low, high, outcome,
            Math.Sqrt(final.MeanSquaredNorm), n, run.Forwards, run.Gradients, bisections, o.Invariance);
    }
}
