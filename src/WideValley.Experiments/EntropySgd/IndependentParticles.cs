using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using WideValley.Optim;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Experiments;

/// <summary>
/// K independent copies of a one-dimensional problem as one float32 parameter vector: the loss is the sum of
/// f(x_i), so its gradient's i-th entry is f'(x_i) and every coordinate evolves on its own. One optimizer over this
/// vector is K independent runs (from K starts, or K chains at one point), sharing one noise stream whose entries are
/// independent per coordinate. Gradients are written straight into .grad; there is no autograd graph to build.
/// </summary>
/// <remarks>
/// The closure runs up to millions of times on a few hundred elements, where TorchSharp's per-call costs (a handle for
/// .grad, span checks, a scalar for fill_) would be four times the arithmetic; so it works on the three buffers'
/// addresses, taken once. The optimizers update positions and gradients in place, which keeps the addresses valid;
/// <see cref="Read"/> checks that nobody replaced the gradient tensor meanwhile.
/// </remarks>
public sealed unsafe class IndependentParticles : IDisposable
{
    readonly Func<double, (double Value, double Derivative)> _evaluate;
    readonly Tensor _loss;
    readonly Tensor _grad;
    readonly float* _positionsData;
    readonly float* _gradData;
    readonly double* _lossData;

    /// <summary>The positions x_1..x_K (float32, CPU, contiguous: the layout the fused optimizer kernels use).</summary>
    public Parameter Positions { get; }

    /// <summary>How many times <see cref="Closure"/> has run.</summary>
    public long Calls { get; private set; }

    /// <summary>
    /// Called by <see cref="Closure"/> after it has written the gradient, with f(x_i) of every particle at the positions
    /// it evaluated (valid until the next call): lets an experiment gather statistics of the points an optimizer
    /// visits, such as the samples of a Langevin chain.
    /// </summary>
    public Action<ReadOnlyMemory<double>>? Observer { get; set; }

    readonly double[] _losses;
    readonly double[] _chunkTotals;
    readonly Action<int, long, long> _evaluateChunk;

    /// <param name="evaluate">f(x) and f'(x) of the one-dimensional problem.</param>
    /// <param name="starts">x_1..x_K at the start.</param>
    public IndependentParticles(Func<double, (double Value, double Derivative)> evaluate, IReadOnlyList<double> starts)
    {
        ArgumentNullException.ThrowIfNull(evaluate);
        ArgumentNullException.ThrowIfNull(starts);
        if (starts.Count == 0) throw new ArgumentException("at least one particle is needed", nameof(starts));
        _evaluate = evaluate;
        var initial = starts.Select(s => (float)s).ToArray();
        Positions = new Parameter(tensor(initial).DetachFromDisposeScope());
        _grad = zeros_like(Positions).DetachFromDisposeScope();
        Positions.grad = _grad;
        _loss = zeros(1, ScalarType.Float64).DetachFromDisposeScope();
        _losses = new double[initial.Length];
        _chunkTotals = new double[(initial.Length + CpuFloatKernels.Chunk - 1) / CpuFloatKernels.Chunk];
        _evaluateChunk = EvaluateChunk;
        _positionsData = CpuFloatKernels.Pointer(Positions);
        _gradData = CpuFloatKernels.Pointer(_grad);
        _lossData = (double*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(_loss.bytes));
    }

    /// <summary>K, the number of particles.</summary>
    public int Count => _losses.Length;

    /// <summary>
    /// Writes f'(x_i) into .grad and returns the total loss sum_i f(x_i) (a one-element tensor owned by this object,
    /// overwritten by the next call: optimizers may return it, nobody needs to dispose it).
    /// </summary>
    public Tensor Closure()
    {
        Calls++;
        // The local-entropy estimator sets .grad to None before each call (as torch's zero_grad(set_to_none=True)
        // does); the chunks write into this buffer, so it goes back.
        Positions.grad = _grad;
        // Chunks on libtorch's threads for the many-chain checks; per-chunk totals added in order keep the loss
        // independent of the thread count.
        CpuFloatKernels.ForEachChunk(_losses.Length, _evaluateChunk);
        Observer?.Invoke(_losses);
        *_lossData = _chunkTotals.Sum();
        return _loss;
    }

    void EvaluateChunk(int chunk, long start, long end)
    {
        double total = 0;
        for (var i = (int)start; i < end; i++)
        {
            var (loss, slope) = _evaluate(_positionsData[i]);
            _gradData[i] = (float)slope;
            _losses[i] = loss;
            total += loss;
        }
        _chunkTotals[chunk] = total;
    }

    /// <summary>The current positions as doubles.</summary>
    /// <exception cref="InvalidOperationException">Something replaced the gradient tensor, so the closure's gradients went astray.</exception>
    public double[] Read()
    {
        using (var grad = Positions.grad)
            if (grad is null || CpuFloatKernels.Pointer(grad) != _gradData)
                throw new InvalidOperationException("the gradient tensor was replaced; the optimizer must update .grad in place");
        return new ReadOnlySpan<float>(_positionsData, _losses.Length).ToArray().Select(v => (double)v).ToArray();
    }

    /// <summary>Frees the positions, their gradient and the loss tensor; the object is unusable afterwards.</summary>
    public void Dispose()
    {
        _grad.Dispose();
        Positions.Dispose();
        _loss.Dispose();
    }
}
