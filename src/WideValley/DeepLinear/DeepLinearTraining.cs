using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.DeepLinear;

/// <summary>
/// What <see cref="DeepLinearTraining.Measure"/> reports for one network, on the clean network and data. A network whose
/// weights are no longer finite (diverged) has NaN losses, distance and spectrum and rank -1.
/// </summary>
/// <param name="Loss">L(W) = 1/2 tr((W - A) Sigma (W - A)^T) of the product W.</param>
/// <param name="ExcessLoss">L(W) - L(W*), W* the global optimum under the width constraint.</param>
/// <param name="DistanceToOptimum">||W - W*||_F.</param>
/// <param name="Rank">The product's numerical rank (<see cref="ProductSpectrum.NumericalRank"/>).</param>
/// <param name="Spectrum">The product's singular values, descending (min(d_0, d_L) of them).</param>
/// <param name="LayerRanks">The numerical rank of each W_l, l = 1 ... L.</param>
public sealed record DeepLinearMeasurement(double Loss, double ExcessLoss, double DistanceToOptimum, int Rank, double[] Spectrum, int[] LayerRanks)
{
    /// <summary>Whether the network diverged (non-finite weights).</summary>
    public bool Diverged => Rank < 0;

    /// <summary>The smallest singular value of the product.</summary>
    public double SigmaMin => Spectrum[^1];

    /// <summary>The largest singular value of the product.</summary>
    public double SigmaMax => Spectrum[0];
}

/// <summary>The noise of one training step, for every network of a batch (null: that kind is not drawn).</summary>
/// <param name="Step">The step t it was drawn for.</param>
/// <param name="InputNoise">Added to the inputs, [M, d_0, N].</param>
/// <param name="OutputNoise">Added to the targets, [M, d_L, N].</param>
/// <param name="WeightMultipliers">Multiply the weights in the forward pass, [M, P] laid out as the parameters.</param>
/// <param name="ActivationMultipliers">Multiply the hidden activations, one [M, d_l, N] per hidden layer.</param>
/// <param name="GradientNoise">Added to the gradient, [M, P].</param>
public sealed record DeepLinearNoiseDraw(long Step, Tensor? InputNoise, Tensor? OutputNoise, Tensor? WeightMultipliers,
    IReadOnlyList<Tensor>? ActivationMultipliers, Tensor? GradientNoise) : IDisposable
{
    /// <summary>Frees the drawn tensors.</summary>
    public void Dispose()
    {
        InputNoise?.Dispose();
        OutputNoise?.Dispose();
        WeightMultipliers?.Dispose();
        if (ActivationMultipliers is not null) foreach (var a in ActivationMultipliers) a.Dispose();
        GradientNoise?.Dispose();
    }
}

/// <summary>
/// Full-batch gradient descent of a <see cref="DeepLinearNetworks"/> batch, each network on its own
/// <see cref="LinearRegressionProblem"/> and with its own <see cref="DeepLinearNoise"/>: per step, draw the noise of
/// every active kind at its annealed scale sigma_t (t = the step index, from 0), compute the gradient of the noisy loss
/// in closed form, add gradient noise, and take W &lt;- W - lr * g. All noise comes from one torch generator seeded with
/// the noise seed, drawn for the whole batch at once (a network's noise therefore depends on the batch it is in; its
/// start does not).
/// </summary>
public sealed class DeepLinearTraining : IDisposable
{
    readonly DeepLinearNetworks _nets;
    readonly DeepLinearNoise[] _noise;
    readonly Tensor _inputs;
    readonly Tensor _targets;
    readonly Tensor _teachers;
    readonly Tensor _covariances;
    readonly Tensor _optima;
    readonly double[] _optimalLoss;
    readonly Generator _generator;

    /// <summary>Sets up training of <paramref name="nets"/>.</summary>
    /// <param name="nets">The networks (already initialised).</param>
    /// <param name="problems">The problems; network i trains on problems[<paramref name="problemOfNetwork"/>[i]].</param>
    /// <param name="problemOfNetwork">One problem index per network.</param>
    /// <param name="noise">One noise setting per network.</param>
    /// <param name="learningRate">The step size.</param>
    /// <param name="noiseSeed">The seed of every noise draw.</param>
    /// <exception cref="ArgumentException">Counts or sizes that do not fit, or invalid noise.</exception>
    public DeepLinearTraining(DeepLinearNetworks nets, IReadOnlyList<LinearRegressionProblem> problems, IReadOnlyList<int> problemOfNetwork,
        IReadOnlyList<DeepLinearNoise> noise, double learningRate, long noiseSeed)
    {
        ArgumentNullException.ThrowIfNull(nets);
        ArgumentNullException.ThrowIfNull(problems);
        ArgumentNullException.ThrowIfNull(problemOfNetwork);
        ArgumentNullException.ThrowIfNull(noise);
        if (problems.Count == 0) throw new ArgumentException("at least one problem is needed");
        if (problemOfNetwork.Count != nets.Networks) throw new ArgumentException($"one problem index per network is needed ({nets.Networks}), got {problemOfNetwork.Count}");
        if (noise.Count != nets.Networks) throw new ArgumentException($"one noise setting per network is needed ({nets.Networks}), got {noise.Count}");
        if (!(learningRate > 0) || !double.IsFinite(learningRate)) throw new ArgumentException($"the learning rate must be positive and finite, got {learningRate}");
        var samples = problems[0].Inputs.shape[1];
        foreach (var p in problems)
        {
            if (p.Inputs.shape[0] != nets.Inputs || p.Targets.shape[0] != nets.Outputs)
                throw new ArgumentException($"a problem maps {p.Inputs.shape[0]} inputs to {p.Targets.shape[0]} outputs; the networks map {nets.Inputs} to {nets.Outputs}");
            if (p.Inputs.shape[1] != samples) throw new ArgumentException("every problem must have the same number of samples");
        }
        for (var i = 0; i < noise.Count; i++)
        {
            if (problemOfNetwork[i] < 0 || problemOfNetwork[i] >= problems.Count)
                throw new ArgumentException($"network {i}: problem index {problemOfNetwork[i]} is not in 0 ... {problems.Count - 1}");
            ArgumentNullException.ThrowIfNull(noise[i], $"noise[{i}]");
            noise[i].Validate();
        }
        _nets = nets;
        _noise = noise.ToArray();
        LearningRate = learningRate;
        using var scope = NewDisposeScope();
        var index = tensor(problemOfNetwork.Select(i => (long)i).ToArray(), ScalarType.Int64);
        Tensor Gather(Func<LinearRegressionProblem, Tensor> pick, ScalarType dtype) =>
            stack(problems.Select(pick).ToArray()).index_select(0, index).to(dtype, nets.Device).contiguous().MoveToOuterDisposeScope();
        _inputs = Gather(p => p.Inputs, nets.Dtype);
        _targets = Gather(p => p.Targets, nets.Dtype);
        _teachers = Gather(p => p.Teacher, ScalarType.Float64);
        _covariances = Gather(p => p.InputCovariance, ScalarType.Float64);
        _optima = Gather(p => p.Optimum, ScalarType.Float64);
        _optimalLoss = problemOfNetwork.Select(i => problems[i].OptimalLoss).ToArray();
        _generator = new Generator((ulong)noiseSeed);
    }

    /// <summary>The step size.</summary>
    public double LearningRate { get; }

    /// <summary>Steps taken so far; the next step draws its noise at this t.</summary>
    public long Steps { get; private set; }

    /// <summary>The clean training inputs of every network, [M, d_0, N].</summary>
    public Tensor Inputs => _inputs;

    /// <summary>The clean targets of every network, [M, d_L, N].</summary>
    public Tensor Targets => _targets;

    /// <summary>Per-network standard deviations of one noise kind at step t, or null when none is active.</summary>
    Tensor? Deviations(Func<DeepLinearNoise, NoiseSchedule> kind, long t)
    {
        var values = new double[_noise.Length];
        var any = false;
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = kind(_noise[i]).StandardDeviationAt(t);
            any |= values[i] > 0;
        }
        return any ? tensor(values, _nets.Dtype, _nets.Device) : null;
    }

    /// <summary>
    /// Standard normal draws in the networks' type. They are drawn in float32 (and widened for float64 networks):
    /// libtorch's float64 normal sampler is several times slower on the CPU, and float32 resolution is ample for noise.
    /// </summary>
    Tensor Draw(long[] shape)
    {
        var draw = randn(shape, ScalarType.Float32, _nets.Device, generator: _generator);
        return _nets.Dtype == ScalarType.Float32 ? draw : draw.to(_nets.Dtype);
    }


    /// <summary>
    /// Draws the noise of the next step (t = <see cref="Steps"/>) for every network: each active kind at its annealed
    /// standard deviation, zero perturbation (multipliers exactly 1) for networks without that kind. A kind no network
    /// uses is not drawn (null).
    /// </summary>
    public DeepLinearNoiseDraw DrawNoise()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var t = Steps;
        var m = _nets.Networks;
        var n = _inputs.shape[2];
        Tensor? inputNoise = null, outputNoise = null, weightMultipliers = null, gradientNoise = null;
        Tensor[]? activationMultipliers = null;
        if (Deviations(d => d.Inputs, t) is { } inputDeviation)
            inputNoise = Draw([m, _nets.Inputs, n]).mul_(inputDeviation.view(m, 1, 1)).MoveToOuterDisposeScope();
        if (Deviations(d => d.Outputs, t) is { } outputDeviation)
            outputNoise = Draw([m, _nets.Outputs, n]).mul_(outputDeviation.view(m, 1, 1)).MoveToOuterDisposeScope();
        if (Deviations(d => d.Weights, t) is { } weightDeviation)
            weightMultipliers = Draw([m, _nets.ParametersPerNetwork]).mul_(weightDeviation.view(m, 1)).Shift_(1.0).MoveToOuterDisposeScope();
        if (_nets.Depth > 1 && Deviations(d => d.Activations, t) is { } activationDeviation)
        {
            activationMultipliers = new Tensor[_nets.Depth - 1];
            for (var l = 1; l < _nets.Depth; l++)
                activationMultipliers[l - 1] = Draw([m, _nets.Widths[l], n]).mul_(activationDeviation.view(m, 1, 1)).Shift_(1.0).MoveToOuterDisposeScope();
        }
        if (Deviations(d => d.Gradient, t) is { } gradientDeviation)
            gradientNoise = Draw([m, _nets.ParametersPerNetwork]).mul_(gradientDeviation.view(m, 1)).MoveToOuterDisposeScope();
        return new DeepLinearNoiseDraw(t, inputNoise, outputNoise, weightMultipliers, activationMultipliers, gradientNoise);
    }

    /// <summary>One noisy gradient-descent step of every network with freshly drawn noise; returns the losses of the noisy forward pass, [M].</summary>
    public double[] Step()
    {
        using var draw = DrawNoise();
        return Step(draw);
    }

    /// <summary>
    /// One gradient-descent step of every network under <paramref name="draw"/> (drawn by <see cref="DrawNoise"/> for
    /// this step): the gradient of the loss with inputs x + input noise, targets A x + output noise, weights
    /// W ⊙ weight multipliers and hidden activations ⊙ activation multipliers, plus gradient noise; then
    /// W &lt;- W - lr * g. Returns the losses of the noisy forward pass, [M].
    /// </summary>
    /// <exception cref="ArgumentException">A draw made for another step.</exception>
    public double[] Step(DeepLinearNoiseDraw draw)
    {
        ArgumentNullException.ThrowIfNull(draw);
        if (draw.Step != Steps) throw new ArgumentException($"the noise was drawn for step {draw.Step}, the next step is {Steps}");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = draw.InputNoise is null ? _inputs : _inputs.add(draw.InputNoise);
        var y = draw.OutputNoise is null ? _targets : _targets.add(draw.OutputNoise);
        var losses = _nets.ComputeGradient(x, y, draw.WeightMultipliers, draw.ActivationMultipliers);
        if (draw.GradientNoise is not null) _nets.Gradient.Accumulate_(draw.GradientNoise);
        _nets.Parameters.AddScaled_(_nets.Gradient, -LearningRate);
        Steps++;
        return losses.to(ScalarType.Float64).data<double>().ToArray();
    }

    /// <summary>The clean loss, distance to the optimum, spectrum and ranks of every network (float64).</summary>
    public DeepLinearMeasurement[] Measure()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var raw = _nets.Product().to(ScalarType.Float64);
        // A diverged network (non-finite weights) must not stop the others' SVD: it is measured as the zero matrix and
        // then reported as diverged (NaN losses, rank -1).
        var finite = raw.isfinite().all(1).all(1);
        for (var l = 1; l <= _nets.Depth; l++) finite = finite.logical_and(_nets.Layer(l).isfinite().all(1).all(1));
        var finiteFlags = finite.data<bool>().ToArray();
        var product = raw.where(finite.view(-1, 1, 1), zeros_like(raw));
        var difference = product.sub(_teachers);
        var loss = bmm(difference, _covariances).mul(difference).sum([1, 2]).Scale_(0.5).data<double>().ToArray();
        var distance = product.sub(_optima).square().sum([1, 2]).sqrt().data<double>().ToArray();
        var spectra = linalg.svdvals(product);
        var k = (int)spectra.shape[1];
        var spectrumValues = spectra.contiguous().data<double>().ToArray();
        var layerSpectra = new double[_nets.Depth][];
        for (var l = 1; l <= _nets.Depth; l++)
        {
            var layer = _nets.Layer(l).to(ScalarType.Float64);
            layerSpectra[l - 1] = linalg.svdvals(layer.where(finite.view(-1, 1, 1), zeros_like(layer))).contiguous().data<double>().ToArray();
        }
        var result = new DeepLinearMeasurement[_nets.Networks];
        for (var i = 0; i < result.Length; i++)
        {
            var spectrum = spectrumValues.AsSpan(i * k, k).ToArray();
            var layersFinite = Enumerable.Range(1, _nets.Depth).All(l =>
            {
                var kl = Math.Min(_nets.Widths[l], _nets.Widths[l - 1]);
                return layerSpectra[l - 1].AsSpan(i * kl, kl).ToArray().All(double.IsFinite);
            });
            // Finite weights can still overflow in the product, its loss or its singular values: diverged too.
            if (!finiteFlags[i] || !layersFinite || !spectrum.All(double.IsFinite) || !double.IsFinite(loss[i]) || !double.IsFinite(distance[i]))
            {
                result[i] = new DeepLinearMeasurement(double.NaN, double.NaN, double.NaN, -1, Enumerable.Repeat(double.NaN, k).ToArray(),
                    Enumerable.Repeat(-1, _nets.Depth).ToArray());
                continue;
            }
            var layerRanks = new int[_nets.Depth];
            for (var l = 1; l <= _nets.Depth; l++)
            {
                var kl = Math.Min(_nets.Widths[l], _nets.Widths[l - 1]);
                layerRanks[l - 1] = ProductSpectrum.NumericalRank(layerSpectra[l - 1].AsSpan(i * kl, kl).ToArray(), _nets.Widths[l], _nets.Widths[l - 1]);
            }
            result[i] = new DeepLinearMeasurement(loss[i], loss[i] - _optimalLoss[i], distance[i],
                ProductSpectrum.NumericalRank(spectrum, _nets.Outputs, _nets.Inputs), spectrum, layerRanks);
        }
        return result;
    }

    /// <summary>Frees the gathered problem tensors and the generator (not the networks).</summary>
    public void Dispose()
    {
        _inputs.Dispose();
        _targets.Dispose();
        _teachers.Dispose();
        _covariances.Dispose();
        _optima.Dispose();
        _generator.Dispose();
    }
}
