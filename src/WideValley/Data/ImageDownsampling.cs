using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Data;

/// <summary>
/// Smaller images for experiments on small inputs (Choromanska et al. 2015 train on MNIST downsampled to 10x10; their
/// resampling method is not stated). The method here is ours: area averaging (adaptive average pooling), where output
/// pixel (i, j) of an S x S image is the mean of the input pixels in rows floor(i H / S) .. ceil((i + 1) H / S) - 1
/// and the matching columns. For 28 -&gt; 10 each window is 3 or 4 pixels wide, neighbouring windows overlapping by
/// at most one pixel; every input pixel counts, so no aliasing of thin strokes.
/// </summary>
public static class ImageDownsampling
{
    /// <summary>
    /// Images [N, C, H, W] (any floating or byte type) area-averaged to [N, C, size, size] and flattened to
    /// [N, C·size·size] float32, in the scale of the input (byte pixels stay 0..255 unless scaled by the caller).
    /// </summary>
    /// <exception cref="ArgumentException">Not a 4-D image batch, or a size outside 1 .. min(H, W).</exception>
    public static Tensor AreaAverageFlat(Tensor images, int size)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4)
            throw new ArgumentException($"AreaAverageFlat: expected images [N, C, H, W], got [{string.Join(", ", images.shape)}]", nameof(images));
        if (size < 1 || size > Math.Min(images.shape[2], images.shape[3]))
            throw new ArgumentOutOfRangeException(nameof(size), size, $"the downsampled size must be from 1 to {Math.Min(images.shape[2], images.shape[3])} (the image's side)");
        using var scope = NewDisposeScope();
        var floats = images.dtype == ScalarType.Float64 ? images : images.to(ScalarType.Float32);
        var pooled = nn.functional.adaptive_avg_pool2d(floats, [size, size]);
        return pooled.reshape(images.shape[0], -1).to(ScalarType.Float32).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A classification set (<see cref="DatasetCatalog.LoadClassification"/>, pixels scaled as its options say)
    /// with every split's images area-averaged to size x size and flattened: inputs [N, C·size·size] float32.
    /// The source set is not consumed.
    /// </summary>
    public static ClassificationDataset Downsample(ClassificationDataset source, int size)
    {
        ArgumentNullException.ThrowIfNull(source);
        LabeledData Part(LabeledData d) => new(AreaAverageFlat(d.Inputs, size), d.Labels.clone(), d.NumClasses);
        return new ClassificationDataset
        {
            Name = source.Name,
            Train = Part(source.Train),
            Validation = source.Validation is null ? null : Part(source.Validation),
            Test = Part(source.Test),
            Source = source.Source,
            Preprocessing = $"{source.Preprocessing}; area-averaged (adaptive average pooling) to {size}x{size} and flattened".TrimStart(';', ' '),
        };
    }
}
