using TorchSharp;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace WideValley.Distributed;

/// <summary>
/// One contiguous 1-D tensor holding a list of tensors end to end, with a persistent view shaped like each of them,
/// so that parameters or gradients travel as ONE collective per step instead of one per tensor. Two ways to use it:
/// <list type="bullet">
/// <item><see cref="AdoptParameters"/> / <see cref="AdoptGradients"/>: the parameters (or their gradients) themselves
/// become views into <see cref="Flat"/>, so the flat buffer is the model's parameter (gradient) vector and nothing is
/// copied per step. The parameter objects stay the same (optimizers created before or after keep working).</item>
/// <item><see cref="LayoutOf"/> with <see cref="CopyFrom"/> / <see cref="CopyTo"/> (or the gradient forms): the
/// tensors keep their own memory and are copied into and out of the buffer with one call each.</item>
/// </list>
/// The buffer is made once and reused; disposing it frees the views and the buffer (adopted parameters keep the memory
/// alive through their own references).
/// </summary>
public sealed class FlatBuffer : IDisposable
{
    readonly Tensor[] _views;

    FlatBuffer(Tensor flat, IReadOnlyList<long[]> shapes)
    {
        Flat = flat;
        _views = new Tensor[shapes.Count];
        var offsets = new long[shapes.Count];
        long offset = 0;
        for (var i = 0; i < shapes.Count; i++)
        {
            var n = shapes[i].Aggregate(1L, (a, b) => a * b);
            offsets[i] = offset;
            using var piece = flat.narrow(0, offset, n);
            _views[i] = piece.view(shapes[i]).DetachFromDisposeScope();
            offset += n;
        }
        Offsets = offsets;
    }

    /// <summary>The flat 1-D contiguous buffer: pass it to <see cref="ICollectives"/>.</summary>
    public Tensor Flat { get; }

    /// <summary>One view per tensor of the layout, shaped like it and sharing <see cref="Flat"/>'s memory.</summary>
    public IReadOnlyList<Tensor> Views => _views;

    /// <summary>Where each tensor starts in <see cref="Flat"/>, in elements.</summary>
    public IReadOnlyList<long> Offsets { get; }

    /// <summary>The total number of elements.</summary>
    public long ElementCount => Flat.numel();

    /// <summary>
    /// A zero-filled buffer laid out like <paramref name="tensors"/> (their shapes in order; their common element type
    /// and device). Nothing is copied: use <see cref="CopyFrom"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The list is empty, or the tensors differ in element type or device.</exception>
    public static FlatBuffer LayoutOf(IReadOnlyList<Tensor> tensors)
    {
        var (dtype, device) = Common(tensors, nameof(tensors));
        var total = tensors.Sum(t => t.numel());
        var flat = zeros(total, dtype: dtype, device: device).DetachFromDisposeScope();
        return new FlatBuffer(flat, [.. tensors.Select(t => t.shape)]);
    }

    /// <summary>
    /// Moves the parameters' values into one new buffer and makes each parameter a view of its piece (in place, under
    /// no_grad): afterwards <see cref="Flat"/> is the parameter vector, an update of either is seen by the other, and
    /// backward and optimizers work as before. Moving the model to another device or type (<c>module.to(...)</c>)
    /// replaces its parameters and ends the link; adopt after that.
    /// </summary>
    /// <exception cref="ArgumentException">The list is empty, or the parameters differ in element type or device.</exception>
    public static FlatBuffer AdoptParameters(IReadOnlyList<Parameter> parameters)
    {
        var buffer = LayoutOf(parameters);
        using var noGrad = no_grad();
        for (var i = 0; i < parameters.Count; i++)
        {
            buffer._views[i].copy_(parameters[i]);
            parameters[i].set_(buffer._views[i]);
        }
        return buffer;
    }

    /// <summary>
    /// Makes each parameter's gradient a view of its piece of this buffer (which must be laid out like the parameters),
    /// copying any gradient already there: backward then accumulates into <see cref="Flat"/> directly, and
    /// TorchSharp's optimizer <c>zero_grad()</c>, which zeroes gradients in place, keeps the link. Code that sets a
    /// gradient to null or assigns a new tensor to it, or a backward with <c>create_graph: true</c> (which replaces the
    /// gradient), ends the link for that parameter: <see cref="GradientsAreViews"/> tells whether it still holds.
    /// </summary>
    /// <exception cref="ArgumentException">The parameters do not match this buffer's layout.</exception>
    public void AdoptGradients(IReadOnlyList<Parameter> parameters)
    {
        CheckLayout(parameters, nameof(parameters));
        using var noGrad = no_grad();
        for (var i = 0; i < parameters.Count; i++)
        {
            using var grad = parameters[i].grad;
            if (grad is null) _views[i].zero_();
            else _views[i].copy_(grad);
            parameters[i].grad = _views[i];
        }
    }

    /// <summary>Whether every parameter's gradient still lies in this buffer at its piece (see <see cref="AdoptGradients"/>).</summary>
    public bool GradientsAreViews(IReadOnlyList<Parameter> parameters)
    {
        CheckLayout(parameters, nameof(parameters));
        var start = CollectiveTensors.Address(Flat);
        var bytes = Flat.element_size();
        for (var i = 0; i < parameters.Count; i++)
        {
            using var grad = parameters[i].grad;
            if (grad is null || !grad.is_contiguous() || CollectiveTensors.Address(grad) != start + Offsets[i] * bytes) return false;
        }
        return true;
    }

    /// <summary>Copies <paramref name="tensors"/> (laid out as this buffer) into <see cref="Flat"/>.</summary>
    /// <exception cref="ArgumentException">The tensors do not match this buffer's layout.</exception>
    public void CopyFrom(IReadOnlyList<Tensor> tensors)
    {
        CheckLayout(tensors, nameof(tensors));
        using var noGrad = no_grad();
        for (var i = 0; i < tensors.Count; i++) _views[i].copy_(tensors[i]);
    }

    /// <summary>Copies <see cref="Flat"/> out into <paramref name="tensors"/> (laid out as this buffer), in place.</summary>
    /// <exception cref="ArgumentException">The tensors do not match this buffer's layout.</exception>
    public void CopyTo(IReadOnlyList<Tensor> tensors)
    {
        CheckLayout(tensors, nameof(tensors));
        using var noGrad = no_grad();
        for (var i = 0; i < tensors.Count; i++) tensors[i].copy_(_views[i]);
    }

    /// <summary>Copies the parameters' gradients into <see cref="Flat"/>; a parameter without a gradient gives zeros.</summary>
    /// <exception cref="ArgumentException">The parameters do not match this buffer's layout.</exception>
    public void CopyGradientsFrom(IReadOnlyList<Parameter> parameters)
    {
        CheckLayout(parameters, nameof(parameters));
        using var noGrad = no_grad();
        for (var i = 0; i < parameters.Count; i++)
        {
            using var grad = parameters[i].grad;
            if (grad is null) _views[i].zero_();
            else _views[i].copy_(grad);
        }
    }

    /// <summary>
    /// Copies <see cref="Flat"/> out into the parameters' gradients, in place; a parameter without a gradient gets a
    /// new one (a copy of its piece).
    /// </summary>
    /// <exception cref="ArgumentException">The parameters do not match this buffer's layout.</exception>
    public void CopyGradientsTo(IReadOnlyList<Parameter> parameters)
    {
        CheckLayout(parameters, nameof(parameters));
        using var noGrad = no_grad();
        for (var i = 0; i < parameters.Count; i++)
        {
            using var grad = parameters[i].grad;
            if (grad is null)
            {
                using var copy = _views[i].clone();
                parameters[i].grad = copy;
            }
            else grad.copy_(_views[i]);
        }
    }

    /// <summary>Frees the views and the buffer.</summary>
    public void Dispose()
    {
        foreach (var v in _views) v.Dispose();
        Flat.Dispose();
    }

    static (ScalarType, Device) Common(IReadOnlyList<Tensor> tensors, string name)
    {
        ArgumentNullException.ThrowIfNull(tensors, name);
        if (tensors.Count == 0) throw new ArgumentException("a flat buffer needs at least one tensor; got none", name);
        var (dtype, device) = (tensors[0].dtype, tensors[0].device);
        for (var i = 1; i < tensors.Count; i++)
            if (tensors[i].dtype != dtype || tensors[i].device.ToString() != device.ToString())
                throw new ArgumentException(
                    $"a flat buffer holds one element type on one device, but tensor {i} is {tensors[i].dtype} on {tensors[i].device} " +
                    $"while tensor 0 is {dtype} on {device}; keep such tensors in separate buffers", name);
        return (dtype, device);
    }

    void CheckLayout(IReadOnlyList<Tensor> tensors, string name)
    {
        ArgumentNullException.ThrowIfNull(tensors, name);
        if (tensors.Count != _views.Length)
            throw new ArgumentException($"this flat buffer is laid out for {_views.Length} tensors; got {tensors.Count}", name);
        for (var i = 0; i < tensors.Count; i++)
            if (!tensors[i].shape.SequenceEqual(_views[i].shape) || tensors[i].dtype != Flat.dtype)
                throw new ArgumentException(
                    $"tensor {i} is {tensors[i].dtype} [{string.Join(", ", tensors[i].shape)}], but this flat buffer holds " +
                    $"{Flat.dtype} [{string.Join(", ", _views[i].shape)}] there", name);
    }
}
