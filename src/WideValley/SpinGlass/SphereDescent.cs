using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>
/// The machinery the minimisers share: checked starts, the per-start record, projected gradient descent with
/// frozen finished starts, and the final report (with indices on request).
/// </summary>
internal sealed class SphereDescent
{
    readonly SphericalPSpinGlass _glass;

    SphereDescent(SphericalPSpinGlass glass, Tensor points)
    {
        _glass = glass;
        Points = points;
        var k = (int)points.shape[0];
        Energy = new double[k];
        GradientNorm = new double[k];
        Steps = new int[k];
        Converged = new bool[k];
    }

    /// <summary>The working points [K, N] (updated in place).</summary>
    public Tensor Points { get; }

    public double[] Energy { get; }

    public double[] GradientNorm { get; }

    public int[] Steps { get; }

    public bool[] Converged { get; }

    /// <summary>Checks the glass and starts and copies the starts onto the sphere, in the glass's type and device.</summary>
    public static SphereDescent Start(SphericalPSpinGlass glass, Tensor starts, string what)
    {
        ArgumentNullException.ThrowIfNull(glass);
        ArgumentNullException.ThrowIfNull(starts);
        if (starts.dim() != 2 || starts.shape[1] != glass.Size)
            throw new ArgumentException($"{what}: starts must be [K, N] with N = {glass.Size}; got shape [{string.Join(", ", starts.shape)}].", nameof(starts));
        if (starts.shape[0] < 1)
            throw new ArgumentException($"{what}: K = 0 starts given; at least 1 is needed.", nameof(starts));
        if (!starts.is_floating_point() || !isfinite(starts).all().item<bool>())
            throw new ArgumentException($"{what}: the starts must be floating and finite (a NaN or infinity was found).", nameof(starts));
        using var scope = NewDisposeScope();
        var points = Sphere.Retract(starts.detach().to(glass.Dtype, glass.Device)).contiguous();
        return new SphereDescent(glass, points.DetachFromDisposeScope());
    }

    /// <summary>
    /// Projected gradient descent from the current points until each start's projected gradient norm is below the
    /// tolerance (the start is then frozen) or the phase has taken <see cref="ProjectedGradientDescentOptions.MaxSteps"/>
    /// steps. Records energy per spin and gradient norm of every start at its final point.
    /// </summary>
    public void Descend(ProjectedGradientDescentOptions o, string phase, DescentState? resume = null)
    {
        var n = _glass.Size;
        var k = (int)Points.shape[0];
        var active = Enumerable.Range(0, k).ToArray();
        var first = 0;
        if (resume is { Phase: DescentPhase.Descent })
        {
            active = resume.Active.ToArray();
            first = resume.Step;
        }
        for (var t = first; ; t++)
        {
            if (active.Length == 0) break;
            if (o.Cancellation.IsCancellationRequested)
            {
                Save(DescentPhase.Descent, t, active);
                o.Cancellation.ThrowIfCancellationRequested();
            }
            if (_checkpoint is not null && t > first && (t - first) % _checkpoint.EverySteps == 0) Save(DescentPhase.Descent, t, active);
            using var scope = NewDisposeScope();
            var all = active.Length == k;
            var ids = all ? null : tensor(active.Select(i => (long)i).ToArray(), device: _glass.Device);
            var batch = all ? Points : Points.index_select(0, ids!);
            var (energy, gradient) = _glass.EnergyAndGradientOf(_glass.SymmetrisedCouplings, batch);
            var projected = Sphere.ProjectToTangent(gradient, batch);
            var energies = energy.to(ScalarType.Float64, CPU).data<double>().ToArray();
            var norms = projected.norm(1).to(ScalarType.Float64, CPU).data<double>().ToArray();
            var moving = new List<int>(active.Length);
            for (var j = 0; j < active.Length; j++)
            {
                var i = active[j];
                if (!double.IsFinite(energies[j]) || !double.IsFinite(norms[j]))
                    throw new InvalidOperationException($"Spin-glass {phase}: start {i} diverged (energy {energies[j]}, gradient norm {norms[j]}) at step {t}; use a smaller step size.");
                Energy[i] = energies[j] / n;
                GradientNorm[i] = norms[j];
                Converged[i] = norms[j] < o.GradientTolerance;
                if (!Converged[i] && t < o.MaxSteps) moving.Add(j);
            }
            if (moving.Count == 0)
            {
                active = [];
                break;
            }
            var stepSize = o.StepSize / (1 + t * o.StepDecay);
            if (moving.Count == active.Length)
            {
                var moved = Sphere.RetractUnchecked(batch.add(projected.mul(ScalarOf(-stepSize))));
                if (all) Points.copy_(moved);
                else Points.index_copy_(0, ids!, moved);
            }
            else
            {
                var keep = tensor(moving.Select(j => (long)j).ToArray(), device: _glass.Device);
                var moved = Sphere.RetractUnchecked(batch.index_select(0, keep).add(projected.index_select(0, keep).mul(ScalarOf(-stepSize))));
                var targets = tensor(moving.Select(j => (long)active[j]).ToArray(), device: _glass.Device);
                Points.index_copy_(0, targets, moved);
            }
            active = moving.Select(j => active[j]).ToArray();
            foreach (var i in active) Steps[i]++;
            o.Progress?.Report(new SpinGlassProgress(phase, t, active.Length));
        }
        // A finished run's state: resuming from it gives the same result without a step.
        Save(DescentPhase.Descent, 0, active);
    }

    DescentCheckpoint? _checkpoint;
    string _checkpointKey = "";

    /// <summary>
    /// Saves to <paramref name="checkpoint"/> from now on and returns the state saved there before (null when there is
    /// none), after restoring the points and per-start records from it.
    /// </summary>
    /// <exception cref="InvalidDataException">The checkpoint is damaged or of another run.</exception>
    public DescentState? UseCheckpoint(DescentCheckpoint? checkpoint, string method)
    {
        if (checkpoint is null) return null;
        checkpoint.Validate();
        _checkpoint = checkpoint;
        _checkpointKey = DescentState.FullKey(checkpoint, method, (int)Points.shape[0], _glass.Size, Points.dtype);
        var state = DescentState.Load(checkpoint.Path, _checkpointKey);
        if (state is null) return null;
        state.RestorePoints(Points);
        state.Steps.CopyTo(Steps, 0);
        state.Converged.CopyTo(Converged, 0);
        state.Energy.CopyTo(Energy, 0);
        state.GradientNorm.CopyTo(GradientNorm, 0);
        return state;
    }

    /// <summary>Saves the state (no-op without a checkpoint): the phase, its next step, the moving starts and the points.</summary>
    public void Save(DescentPhase phase, int nextStep, int[] active)
    {
        if (_checkpoint is null) return;
        new DescentState(_checkpointKey, phase, nextStep, (int)Points.shape[0], _glass.Size, Points.dtype, DescentState.RawPoints(Points),
            active, Steps.ToArray(), Converged.ToArray(), Energy.ToArray(), GradientNorm.ToArray()).Save(_checkpoint.Path);
    }

    /// <summary>
    /// A 0-d tensor holding a scalar, in the points' type and device: multiplying by it avoids a temporary native
    /// Scalar whose finalizer could run mid-call (see TorchScalars). Lives in the caller's dispose scope.
    /// </summary>
    internal Tensor ScalarOf(double value) => tensor(value, _glass.Dtype, _glass.Device);

    /// <summary>The result: indices for the first <paramref name="indexedStarts"/> starts; the points move to the result.</summary>
    public SpinGlassMinimization Finish(string method, int indexedStarts, double indexTolerance)
    {
        var k = Energy.Length;
        var index = new int?[k];
        for (var i = 0; i < Math.Min(indexedStarts, k); i++)
        {
            using var point = Points[i];
            index[i] = _glass.Index(point, indexTolerance);
        }
        return new SpinGlassMinimization(method, Points, Energy, GradientNorm, Steps, Converged, index);
    }
}
