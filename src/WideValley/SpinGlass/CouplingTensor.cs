using static TorchSharp.torch;

namespace WideValley.SpinGlass;

/// <summary>The symmetrised coupling tensor of a glass, shared by the models made with <see cref="SphericalPSpinGlass.WithField"/>.</summary>
internal sealed class CouplingTensor(Tensor tensor, int size, int order, long workspaceBytes) : IDisposable
{
    bool _disposed;

    public Tensor Tensor
    {
        get
        {
            ThrowIfDisposed();
            return tensor;
        }
    }

    public int Size { get; } = size;

    public int Order { get; } = order;

    public long WorkspaceBytes { get; } = workspaceBytes;

    public ScalarType Dtype { get; } = tensor.dtype;

    public Device Device { get; } = tensor.device;

    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, typeof(SphericalPSpinGlass));

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        tensor.Dispose();
    }
}
