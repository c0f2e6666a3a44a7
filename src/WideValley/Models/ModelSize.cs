namespace WideValley.Models;

/// <summary>
/// The size of a zoo network worked out from its options without building it (<see cref="ModelZoo.EstimateSize"/>), for
/// memory checks before huge allocations.
/// </summary>
/// <param name="Parameters">
/// Exactly the number of scalar parameters the built module has (<see cref="ModelZoo.CountParameters"/>); saturates at
/// <see cref="long.MaxValue"/> for sizes beyond 64 bits.
/// </param>
/// <param name="ActivationsPerExample">
/// A rough count (our estimate) of the values a training forward pass keeps for the backward pass per example: per
/// image for classifiers (the output of every layer: convolution, BatchNorm, ReLU, pooling, dropout), per token (one
/// row, one time step) for language models (the input encoding, per LSTM layer its four gates, cell, tanh of the cell,
/// output and dropout, and the decoder's logits, their log-softmax and its gradient). Not counted: libtorch's
/// temporary workspaces and allocator slack, so the real peak is somewhat higher.
/// </param>
public sealed record ModelSizeEstimate(long Parameters, long ActivationsPerExample);

/// <summary>The analytic parameter counts and activation estimates of the zoo's networks.</summary>
internal static class ModelSize
{
    static long Linear(Int128 inputs, Int128 outputs, bool bias = true) => MemoryBudget.Saturate(inputs * outputs + (bias ? outputs : 0));
    static long Conv(int inputs, int outputs, int kernel) => Linear((Int128)inputs * kernel * kernel, outputs);
    static long Sum(params long[] terms) => MemoryBudget.Saturate(terms.Aggregate(Int128.Zero, (total, term) => total + term));
    static long Square(int size) => (long)size * size;

    /// <summary>784-1024-1024-K with BatchNorm (a weight and a bias per unit) after both hidden layers.</summary>
    public static ModelSizeEstimate MnistFc(int channels, int imageSize, int classes)
    {
        var inputs = channels * Square(imageSize);
        const int width = Models.MnistFc.Width;
        return new(Sum(Linear(inputs, width), 2 * width, Linear(width, width), 2 * width, Linear(width, classes)),
            Sum(2 * inputs, 2 * 4 * width, classes));
    }

    /// <summary>784-64-K.</summary>
    public static ModelSizeEstimate SmallMnistFc(int channels, int imageSize, int classes)
    {
        var inputs = channels * Square(imageSize);
        const int hidden = Models.SmallMnistFc.HiddenUnits;
        return new(Sum(Linear(inputs, hidden), Linear(hidden, classes)), Sum(2 * inputs, 3 * hidden, classes));
    }

    /// <summary>LeNet-BN: conv 20@5x5, BN, pool 3; conv 50@5x5, BN, pool 2; fc 500, BN; fc K.</summary>
    public static ModelSizeEstimate LeNetBn(int channels, int imageSize, int classes)
    {
        var map = Models.LeNetBn.FeatureMapSize(imageSize);
        var conv1 = SpatialSize.AfterConv(imageSize, 5);
        var pool1 = SpatialSize.AfterPool(conv1, 3, 3);
        var conv2 = SpatialSize.AfterConv(pool1, 5);
        return new(
            Sum(Conv(channels, 20, 5), 2 * 20, Conv(20, 50, 5), 2 * 50, Linear(50 * Square(map), 500), 2 * 500, Linear(500, classes)),
            Sum(2 * channels * Square(imageSize), 3 * 20 * Square(conv1), 2 * 20 * Square(pool1), 3 * 50 * Square(conv2),
                2 * 50 * Square(map), 4 * 500, classes));
    }

    /// <summary>small-LeNet: conv 10@5x5, pool 2; conv 20@5x5, pool 2; fc 128; fc K; no BatchNorm.</summary>
    public static ModelSizeEstimate SmallLeNet(int channels, int imageSize, int classes)
    {
        var map = Models.SmallLeNet.FeatureMapSize(imageSize);
        var conv1 = SpatialSize.AfterConv(imageSize, 5);
        var pool1 = SpatialSize.AfterPool(conv1, 2, 2);
        var conv2 = SpatialSize.AfterConv(pool1, 5);
        return new(
            Sum(Conv(channels, 10, 5), Conv(10, 20, 5), Linear(20 * Square(map), 128), Linear(128, classes)),
            Sum(2 * channels * Square(imageSize), 2 * 10 * Square(conv1), 2 * 10 * Square(pool1), 2 * 20 * Square(conv2),
                2 * 20 * Square(map), 3 * 128, classes));
    }

    /// <summary>The HTR authors' LeNet: conv 6@5x5 (input padded to 32x32), pool 2; conv 16@5x5, pool 2; fc 120; fc 84; fc K.</summary>
    public static ModelSizeEstimate LeNet5(int channels, int imageSize, int classes) { var pad = Models.LeNet5.FirstPadding(imageSize); var conv1 = SpatialSize.AfterConv(imageSize, 5, padding: pad); var pool1 = SpatialSize.AfterPool(conv1, 2, 2); var conv2 = SpatialSize.AfterConv(pool1, 5); var map = Models.LeNet5.FeatureMapSize(imageSize); return new(Sum(Conv(channels, 6, 5), Conv(6, 16, 5), Linear(16 * Square(map), 120), Linear(120, 84), Linear(84, classes)), Sum(2 * channels * Square(imageSize), 2 * 6 * Square(conv1), 2 * 6 * Square(pool1), 2 * 16 * Square(conv2), 2 * 16 * Square(map), 3 * 120, 3 * 84, classes)); }

    /// <summary>All-CNN-BN: nine conv-BN-ReLU blocks (3 x 96, 3 x 192 with the third of each stride 2, 2 x 192, 1x1 to K).</summary>
    public static ModelSizeEstimate AllCnnBn(int channels, int imageSize, int classes)
    {
        const int narrow = 96, wide = 192;
        var half = SpatialSize.AfterConv(imageSize, 3, stride: 2, padding: 1);
        var quarter = Models.AllCnnBn.FeatureMapSize(imageSize);
        long Block(int inputs, int outputs, int kernel) => Conv(inputs, outputs, kernel) + 2 * outputs;
        var parameters = Sum(Block(channels, narrow, 3), 2 * Block(narrow, narrow, 3), Block(narrow, wide, 3), 4 * Block(wide, wide, 3),
            Block(wide, classes, 1));
        // Each block keeps its conv, BN and ReLU outputs; the dropouts keep one more map each.
        var activations = Sum(2 * channels * Square(imageSize), 3 * narrow * Square(imageSize) * 2, 3 * narrow * Square(half),
            narrow * Square(half), 3 * wide * Square(half) * 2, 3 * wide * Square(quarter), wide * Square(quarter),
            3 * wide * Square(quarter) * 2, 3 * classes * Square(quarter), classes);
        return new(parameters, activations);
    }

    /// <summary>
    /// Freeman and Bruna's MNIST CNN: conv 32@5x5 SAME, pool 2; conv 64@5x5 SAME, pool 2; fc 1024, dropout; fc K.
    /// Checks that the image size is divisible by 4, as building does.
    /// </summary>
    public static ModelSizeEstimate FbMnistCnn(int channels, int imageSize, int classes)
    {
        Models.FbMnistCnn.CheckImageSize(imageSize);
        const int c1 = Models.FbMnistCnn.Conv1Channels, c2 = Models.FbMnistCnn.Conv2Channels, hidden = Models.FbMnistCnn.Hidden;
        var half = imageSize / 2;
        var map = Models.FbMnistCnn.FeatureMapSize(imageSize);
        return new(
            Sum(Conv(channels, c1, Models.FbMnistCnn.Kernel), Conv(c1, c2, Models.FbMnistCnn.Kernel), Linear((Int128)c2 * Square(map), hidden), Linear(hidden, classes)),
            Sum(2 * channels * Square(imageSize), 2 * c1 * Square(imageSize), c1 * Square(half), 2 * c2 * Square(half), c2 * Square(map),
                3 * hidden, classes));
    }

    /// <summary>
    /// The stacked LSTM of <see cref="LstmLanguageModel"/>: an embedding V x h (when tokens are embedded), per layer one
    /// <c>nn.LSTM</c> with weight_ih 4h x in, weight_hh 4h x h and the two biases bias_ih and bias_hh of 4h each (in = h,
    /// or V for the first layer of a one-hot model), and a decoder h x V with an optional bias of V.
    /// </summary>
    public static ModelSizeEstimate Lstm(int vocabulary, int hidden, int layers, bool embedTokens, bool decoderBias)
    {
        Int128 h = hidden, v = vocabulary;
        var input = embedTokens ? h : v;
        var firstLayer = 4 * h * (input + h) + 8 * h;
        var otherLayer = 4 * h * (h + h) + 8 * h;
        var parameters = (embedTokens ? v * h : 0) + firstLayer + (layers - 1) * otherLayer + h * v + (decoderBias ? v : 0);
        var perToken = (embedTokens ? 2 * h : v) + layers * 9 * h + 3 * v;
        return new(MemoryBudget.Saturate(parameters), MemoryBudget.Saturate(perToken));
    }
}
