using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Landscape;

/// <summary>
/// Sharpness measures of a trained network at its current weights x, on the mean loss over a stated evaluation set
/// (full batch: the batches are weighted by their sizes; or a <see cref="IStreamedLoss"/>), with respect to a selection
/// of parameters (<see cref="LandscapeOptions.Parameters"/>):
/// <list type="bullet">
/// <item><see cref="Epsilon(nn.Module{Tensor, Tensor}, IReadOnlyList{ValueTuple{Tensor, Tensor}}, EpsilonSharpnessOptions?)"/>:
/// Keskar et al. 2017's epsilon-sharpness, max of L(x + delta) - L(x) over the box |delta_i| &lt;= eps (|x_i| + 1).</item>
/// <item><see cref="Sam(nn.Module{Tensor, Tensor}, IReadOnlyList{ValueTuple{Tensor, Tensor}}, SamSharpnessOptions?)"/>:
/// SAM sharpness (Foret et al. 2021), the same over the ball ||delta||_2 &lt;= rho.</item>
/// <item><see cref="Adaptive(nn.Module{Tensor, Tensor}, IReadOnlyList{ValueTuple{Tensor, Tensor}}, AdaptiveSharpnessOptions?)"/>:
/// adaptive sharpness (ASAM, Kwon et al. 2021), over ||T_x^-1 delta||_2 &lt;= rho with T_x = diag(|x_i| + eta).</item>
/// <item><see cref="PacBayes(nn.Module{Tensor, Tensor}, IReadOnlyList{ValueTuple{Tensor, Tensor}}, PacBayesFlatnessOptions?)"/>:
/// the PAC-Bayes flatness sigma' of Jiang et al. 2020.</item>
/// </list>
/// Every measure runs the model as the other landscape measurements do (BatchNorm with running statistics and dropout
/// off unless the options say otherwise; each module's own train/eval flag restored), is seeded, counts its passes over
/// the evaluation set, and leaves the weights bit-identical afterwards, also after an error or a cancellation. The
/// maxima are found by ascent, so the sharpness values are lower bounds of the true maxima (exact on the closed forms
/// the tests check). The flatness documentation in docs/ states the definitions and which design choices are ours.
/// </summary>
public static partial class Sharpness
{
    /// <summary>Keskar et al.'s epsilon-sharpness over (inputs, labels) batches.</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="evaluationSet">The batches the loss is the mean over.</param>
    /// <param name="options">epsilon, steps, starts, seed, parameters.</param>
    /// <exception cref="ArgumentException">A setting out of range, an empty selection, or an evaluation set that does not fit the model.</exception>
    /// <exception cref="NonFiniteValuesException">The weights, or the loss at a perturbed point, are not finite.</exception>
    /// <exception cref="OperationCanceledException">The options' Cancellation was cancelled; the weights are restored.</exception>
    public static EpsilonSharpnessResult Epsilon(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        EpsilonSharpnessOptions? options = null)
    {
        var o = options ?? new EpsilonSharpnessOptions();
        o.Validate();
        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, "Sharpness.Epsilon");
        return Epsilon(loss, o);
    }

    /// <summary>Keskar et al.'s epsilon-sharpness over a streamed loss.</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="streamedLoss">(model, batch) -&gt; mean loss over re-enumerated batches.</param>
    /// <param name="options">epsilon, steps, starts, seed, parameters.</param>
    public static EpsilonSharpnessResult Epsilon(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, EpsilonSharpnessOptions? options = null)
    {
        var o = options ?? new EpsilonSharpnessOptions();
        o.Validate();
        using var loss = new LandscapeLoss(model, streamedLoss, o.Landscape, "Sharpness.Epsilon");
        return Epsilon(loss, o);
    }

    /// <summary>SAM sharpness (one-step or projected ascent) over (inputs, labels) batches.</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="evaluationSet">The batches the loss is the mean over.</param>
    /// <param name="options">rho, steps, seed, parameters.</param>
    /// <exception cref="ArgumentException">A setting out of range, an empty selection, or an evaluation set that does not fit the model.</exception>
    /// <exception cref="NonFiniteValuesException">The weights, or the loss at a perturbed point, are not finite.</exception>
    /// <exception cref="OperationCanceledException">The options' Cancellation was cancelled; the weights are restored.</exception>
    public static BallSharpnessResult Sam(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        SamSharpnessOptions? options = null)
    {
        var o = options ?? new SamSharpnessOptions();
        o.Validate();
        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, "Sharpness.Sam");
        return Sam(loss, o);
    }

    /// <summary>SAM sharpness over a streamed loss.</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="streamedLoss">(model, batch) -&gt; mean loss over re-enumerated batches.</param>
    /// <param name="options">rho, steps, seed, parameters.</param>
    public static BallSharpnessResult Sam(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, SamSharpnessOptions? options = null)
    {
        var o = options ?? new SamSharpnessOptions();
        o.Validate();
        using var loss = new LandscapeLoss(model, streamedLoss, o.Landscape, "Sharpness.Sam");
        return Sam(loss, o);
    }

    /// <summary>Adaptive sharpness (ASAM) over (inputs, labels) batches.</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="evaluationSet">The batches the loss is the mean over.</param>
    /// <param name="options">rho, eta, steps, seed, parameters.</param>
    /// <exception cref="ArgumentException">A setting out of range, an empty selection, or an evaluation set that does not fit the model.</exception>
    /// <exception cref="NonFiniteValuesException">The weights, or the loss at a perturbed point, are not finite.</exception>
    /// <exception cref="OperationCanceledException">The options' Cancellation was cancelled; the weights are restored.</exception>
    public static BallSharpnessResult Adaptive(nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        AdaptiveSharpnessOptions? options = null)
    {
        var o = options ?? new AdaptiveSharpnessOptions();
        o.Validate();
        using var loss = new LandscapeLoss(model, evaluationSet, o.Landscape, "Sharpness.Adaptive");
        return Adaptive(loss, o);
    }

    /// <summary>Adaptive sharpness (ASAM) over a streamed loss.</summary>
    /// <param name="model">The network; its weights and modes are restored afterwards.</param>
    /// <param name="streamedLoss">(model, batch) -&gt; mean loss over re-enumerated batches.</param>
    /// <param name="options">rho, eta, steps, seed, parameters.</param>
    public static BallSharpnessResult Adaptive(nn.Module<Tensor, Tensor> model, IStreamedLoss streamedLoss, AdaptiveSharpnessOptions? options = null)
    {
        var o = options ?? new AdaptiveSharpnessOptions();
        o.Validate();
        using var loss = new LandscapeLoss(model, streamedLoss, o.Landscape, "Sharpness.Adaptive");
        return Adaptive(loss, o);
    }

    /// <summary>
    /// Projected gradient ascent in the box |delta_i| &lt;= w_i = eps (|x_i| + 1), in its own coordinates u = delta / w
    /// (where the box is the cube [-1, 1]^n and the gradient is w grad L): from delta = 0 and from
    /// <see cref="EpsilonSharpnessOptions.RandomStarts"/> uniform points of the box, each step moves u along the
    /// gradient so that its largest coordinate moves by a (the step fraction) and clips back into the cube, keeping the
    /// best point evaluated.
    /// </summary>
    private static EpsilonSharpnessResult Epsilon(LandscapeLoss loss, EpsilonSharpnessOptions o)
    {
        const string where = "Sharpness.Epsilon";
        var starts = 1 + o.RandomStarts;
        using var run = new SharpnessRunner(loss, o, where, "epsilon-sharpness", (long)starts * (o.Steps + 1));
        using var scope = NewDisposeScope();
        var n = loss.Layout.Dimension;
        var halfWidth = run.Origin.abs().Shift_(1).Scale_(o.Epsilon);
        var lower = halfWidth.neg();
        var delta = loss.NewVector();
        var gradient = loss.NewVector();
        var best = loss.NewVector();
        var previous = loss.NewVector();
        var lossAtStart = double.NaN;
        var bestLoss = double.NegativeInfinity;
        var iterations = 0;
        for (var s = 0; s < starts; s++)
        {
            if (s == 0)
            {
                delta.zero_();
            }
            else
            {
                using var generator = SharpnessRunner.DrawGenerator(o.Seed, s);
                using var inner = NewDisposeScope();
                var uniform = rand(n, ScalarType.Float64, generator: generator).to(loss.Dtype, loss.Device);
                using (no_grad()) delta.copy_(uniform.Scale_(2 * o.StartFraction).Shift_(-o.StartFraction).mul_(halfWidth));
            }
            var stationary = false;
            for (var step = 0; step < o.Steps && !stationary; step++)
            {
                var value = run.Gradient(delta, gradient, $"start {s}, step {step}");
                if (s == 0 && step == 0) lossAtStart = value;
                Keep(value, delta, ref bestLoss, best);
                iterations++;
                using var inner = NewDisposeScope();
                using (no_grad())
                {
                    // The gradient in the box's own coordinates u = delta / w is w * grad; scaled so that its largest
                    // entry moves StepFraction of a half-width, and mapped back (times w) to delta.
                    var scaled = gradient.mul(halfWidth);
                    var largest = scaled.abs().max().ToDouble();
                    // A zero gradient (x itself at a minimum), or a step that the box clips away entirely (a corner
                    // whose gradient points outwards), is a stationary point of the ascent: more steps would not move.
                    if (!(largest > 0))
                    {
                        stationary = true;
                        break;
                    }
                    previous.copy_(delta);
                    delta.AddMultiplied_(scaled, halfWidth, o.StepFraction / largest);
                    delta.clamp_(lower, halfWidth);
                    stationary = !delta.ne(previous).any().item<bool>();
                }
            }
            // The last point was evaluated already when the ascent stopped at a stationary point.
            if (!stationary) Keep(run.Evaluate(delta, $"start {s}, final step").Loss, delta, ref bestLoss, best);
        }
        var increase = bestLoss - lossAtStart;
        var keskar = 100 * increase / (1 + lossAtStart);
        return new EpsilonSharpnessResult("epsilon-sharpness", increase, keskar, o.Epsilon, lossAtStart, bestLoss, Norm(best), n,
            run.Forwards, run.Gradients, iterations, starts, o.Invariance);
    }

    private static void Keep(double value, Tensor delta, ref double bestLoss, Tensor best)
    {
        if (!(value > bestLoss)) return;
        bestLoss = value;
        using (no_grad()) best.copy_(delta);
    }

    private static double Norm(Tensor v)
    {
        using var norm = v.to(ScalarType.Float64).norm();
        return norm.ToDouble();
    }

    private static BallSharpnessResult Sam(LandscapeLoss loss, SamSharpnessOptions o)
    {
        using var run = new SharpnessRunner(loss, o, "Sharpness.Sam", "sam-sharpness", o.Steps + 1L);
        return Ball(loss, run, null, o.Rho, o.Steps, o.StepFraction, o.Seed, "sam-sharpness", double.NaN, o.Invariance);
    }

    private static BallSharpnessResult Adaptive(LandscapeLoss loss, AdaptiveSharpnessOptions o)
    {
        using var run = new SharpnessRunner(loss, o, "Sharpness.Adaptive", "adaptive-sharpness", o.Steps + 1L);
        using var scale = run.Origin.abs().Shift_(o.Eta);
        if (o.ScaleOnlyWeights)
        {
            using var noGrad = no_grad();
            foreach (var block in loss.Layout.Blocks)
            {
                if (block.Name.Contains("weight", StringComparison.Ordinal)) continue;
                using var part = scale.narrow(0, block.Offset, block.Count);
                using var one = 1.0.ToScalar();
                part.fill_(one);
            }
        }
        return Ball(loss, run, scale, o.Rho, o.Steps, o.StepFraction, o.Seed, "adaptive-sharpness", o.Eta, o.Invariance);
    }

    /// <summary>
    /// max of L(x + T u) - L(x) over ||u||_2 &lt;= rho (T = diag(<paramref name="scale"/>), or I when null), in the
    /// scaled coordinates u, where the ball is round and the gradient is T grad L. Step 1 is the one-step estimate
    /// u = rho T g / ||T g|| (Foret et al.; Kwon et al.); each further step moves u by <paramref name="stepFraction"/> rho
    /// along the normalised scaled gradient and projects back onto the ball. Working in u makes the iterates of a
    /// rescaled network the same as the original's when T transforms with the weights (ASAM with eta = 0).
    /// </summary>
    private static BallSharpnessResult Ball(LandscapeLoss loss, SharpnessRunner run, Tensor? scale, double rho, int steps, double stepFraction,
        long seed, string measure, double eta, RescalingInvariance invariance)
    {
        using var scope = NewDisposeScope();
        var n = loss.Layout.Dimension;
        var u = loss.NewVector();
        var delta = loss.NewVector();
        var gradient = loss.NewVector();
        var bestU = loss.NewVector();
        var lossAtStart = run.Gradient(null, gradient, "the unperturbed weights");
        var bestLoss = lossAtStart;
        var fallback = false;
        var iterations = 0;
        for (var step = 0; step < steps; step++)
        {
            using var inner = NewDisposeScope();
            if (step > 0)
            {
                ToDelta(u, scale, delta);
                Keep(run.Gradient(delta, gradient, $"ascent step {step}"), u, ref bestLoss, bestU);
            }
            var direction = scale is null ? gradient.clone() : gradient.mul(scale);
            var length = Norm(direction);
            if (!(length > 0))
            {
                if (step > 0) break; // a stationary point of the ascent: nothing further to gain along the gradient.
                // At an exact stationary point (a minimum) every direction is an ascent direction to second order, and
                // the gradient gives none: take a seeded random one, so the measure is defined and reproducible.
                fallback = true;
                using var generator = SharpnessRunner.DrawGenerator(seed, -1);
                direction = randn(n, ScalarType.Float64, generator: generator).to(loss.Dtype, loss.Device);
                length = Norm(direction);
            }
            using (no_grad())
            {
                if (step == 0)
                {
                    u.copy_(direction).Scale_(rho / length);
                }
                else
                {
                    u.AddScaled_(direction, stepFraction * rho / length);
                    var norm = Norm(u);
                    if (norm > rho) u.Scale_(rho / norm);
                }
            }
            iterations++;
        }
        ToDelta(u, scale, delta);
        Keep(run.Evaluate(delta, "the last ascent point").Loss, u, ref bestLoss, bestU);
        ToDelta(bestU, scale, delta);
        return new BallSharpnessResult(measure, bestLoss - lossAtStart, rho, eta, lossAtStart, bestLoss, Norm(delta), Norm(bestU), n,
            run.Forwards, run.Gradients, iterations, fallback, invariance);
    }

    private static void ToDelta(Tensor u, Tensor? scale, Tensor delta)
    {
        using (no_grad())
        {
            delta.copy_(u);
            if (scale is not null) delta.mul_(scale);
        }
    }
}
