using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// The networks of Chaudhari et al. (ICLR 2017), by name: the Sec. 5 benchmarks (mnistfc, lenet, allcnn, ptb-lstm,
/// char-lstm), the small Sec. 5.1 Hessian networks (small-lenet, small-mnistfc, small-char-lstm), and Freeman and
/// Bruna's (ICLR 2017) level-set networks (fb-mnist-cnn, ptb-small-lstm). Classifiers are
/// <c>nn.Module&lt;Tensor, Tensor&gt;</c> (images to logits); language models are <see cref="LstmLanguageModel"/>, an
/// <see cref="IRecurrentLanguageModel"/> (check for that interface first: it is also an <c>nn.Module&lt;Tensor, Tensor&gt;</c>
/// that runs from the zero state). Every model implements <see cref="IHasDropout"/>.
/// </summary>
public static class ModelZoo
{
    /// <summary>Zoo name of the paper's 784-1024-1024-10 MLP.</summary>
    public const string MnistFcName = "mnistfc";
    /// <summary>Zoo name of LeNet-BN.</summary>
    public const string LeNetName = "lenet";
    /// <summary>Zoo name of All-CNN-BN (CIFAR-10).</summary>
    public const string AllCnnName = "allcnn";
    /// <summary>Zoo name of Sec. 5.1's small LeNet.</summary>
    public const string SmallLeNetName = "small-lenet";
    /// <summary>Zoo name of Sec. 5.1's small MLP.</summary>
    public const string SmallMnistFcName = "small-mnistfc";
    /// <summary>Zoo name of the 2 x 128 character LSTM.</summary>
    public const string CharLstmName = "char-lstm";
    /// <summary>Zoo name of Sec. 5.1's small character LSTM.</summary>
    public const string SmallCharLstmName = "small-char-lstm";
    /// <summary>Zoo name of the 2 x 1500 word LSTM for PTB.</summary>
    public const string PtbLstmName = "ptb-lstm";
    /// <summary>Zoo name of Freeman and Bruna's MNIST CNN (the TensorFlow tutorial network of their level-set code).</summary>
    public const string FbMnistCnnName = "fb-mnist-cnn";
    /// <summary>Zoo name of Zaremba et al.'s small 2 x 200 word LSTM, as Freeman and Bruna's PTB script uses it.</summary>
    public const string PtbSmallLstmName = "ptb-small-lstm";

    /// <summary>Zoo name of the HTR authors' LeNet (conv 6 and 16, fc 120 and 84, input padded to 32x32).</summary>
    public const string LeNet5Name = "lenet5";

    private const string ImageInput = "images (N, C, S, S), floating point";

    private sealed record Entry(ModelInfo Info, Func<ModelOptions, ModelInfo, nn.Module> Build, Func<ModelOptions, ModelInfo, ModelSizeEstimate> Estimate);

    private static readonly Entry[] Entries =
    [
        Classifier(new ModelInfo(MnistFcName, ModelKind.Classifier,
                "784-1024-1024-10 fully connected, BatchNorm, ReLU, dropout on input and hidden layers (Sec. 5.2).",
                "MNIST", $"{ImageInput}; paper: 1x28x28", MnistFc.DefaultDropout, MnistFc.DefaultInputDropout, true, false),
            minimumImageSize: null,
            (o, d, i) => new MnistFc(o.InputChannels, o.ImageSize, o.NumClasses, d, i), ModelSize.MnistFc),
        Classifier(new ModelInfo(LeNetName, ModelKind.Classifier,
                "LeNet-BN: conv 20@5x5 and 50@5x5 with BatchNorm and max-pooling, fc 500, dropout after each (Sec. 5.2).",
                "MNIST", $"{ImageInput}; paper: 1x28x28 (at least 22x22)", LeNetBn.DefaultDropout, 0, true, false),
            minimumImageSize: SpatialSize.SmallestValidImage(LeNetBn.FeatureMapSize),
            (o, d, i) => new LeNetBn(o.InputChannels, o.ImageSize, o.NumClasses, d, i), ModelSize.LeNetBn),
        Classifier(new ModelInfo(AllCnnName, ModelKind.Classifier,
                "All-CNN-BN: All-CNN-C with BatchNorm after each conv, as in the reference code (Sec. 5.3), ~1.67 M weights.",
                "CIFAR-10 (global contrast normalisation + ZCA, no augmentation)", $"{ImageInput}; paper: 3x32x32",
                AllCnnBn.DefaultDropout, AllCnnBn.DefaultInputDropout, true, false),
            minimumImageSize: null,
            (o, d, i) => new AllCnnBn(o.InputChannels, o.ImageSize, o.NumClasses, d, i), ModelSize.AllCnnBn),
        Classifier(new ModelInfo(SmallLeNetName, ModelKind.Classifier,
                "small-LeNet: conv 10@5x5 and 20@5x5 with max-pooling, fc 128, no BatchNorm, 47,658 weights (Sec. 5.1).",
                "MNIST", $"{ImageInput}; paper: 1x28x28 (at least 16x16)", 0, 0, true, false),
            minimumImageSize: SpatialSize.SmallestValidImage(SmallLeNet.FeatureMapSize),
            (o, d, i) => new SmallLeNet(o.InputChannels, o.ImageSize, o.NumClasses, d, i), ModelSize.SmallLeNet),
        Classifier(new ModelInfo(SmallMnistFcName, ModelKind.Classifier,
                "small-mnistfc: 784-64-10 with ReLU, 50,890 weights (Sec. 5.1; the paper's \"32 hidden units\" contradicts its count).",
                "MNIST", $"{ImageInput}; paper: 1x28x28", 0, 0, true, false),
            minimumImageSize: null,
            (o, d, i) => new SmallMnistFc(o.InputChannels, o.ImageSize, o.NumClasses, d, i), ModelSize.SmallMnistFc),
        LanguageModel(new ModelInfo(CharLstmName, ModelKind.LanguageModel,
                "char-LSTM: one-hot characters, 2 x 128 LSTM, linear decoder; uniform [-0.08, 0.08] init as char-rnn (Sec. 5.4.2).",
                "War and Peace, characters (paper vocabulary 87)", "token ids (B, T), Int64, in [0, V); paper: V = 87, T = 50",
                0, 0, false, false),
            hiddenSize: 128, layers: 2, embedTokens: false, decoderBias: true, initialisationRange: 0.08),
        LanguageModel(new ModelInfo(SmallCharLstmName, ModelKind.LanguageModel,
                "small char-LSTM: one-hot characters, 1 x 48 LSTM, decoder without bias, 32,640 weights with V = 96 (Sec. 5.1).",
                "256 lines x 32 characters of text (paper: 96-bit one-hot characters)", "token ids (B, T), Int64, in [0, V); paper: V = 96, T = 32",
                0, 0, false, false),
            hiddenSize: 48, layers: 1, embedTokens: false, decoderBias: false, initialisationRange: 0.08),
        LanguageModel(new ModelInfo(PtbLstmName, ModelKind.LanguageModel,
                "PTB-LSTM: Zaremba et al.'s large model, embedding, 2 x 1500 LSTM, dropout 0.65, uniform [-0.04, 0.04] init, ~66 M weights (Sec. 5.4.1).",
                "Penn Treebank, words (vocabulary 10,000)", "token ids (B, T), Int64, in [0, V); paper: V = 10,000, T = 35",
                0.65, 0.65, true, true),
            hiddenSize: 1500, layers: 2, embedTokens: true, decoderBias: true, initialisationRange: 0.04),
        Classifier(new ModelInfo(FbMnistCnnName, ModelKind.Classifier,
                "Freeman & Bruna's MNIST CNN (their code, LaunchScripts/MNIST.py: the TF tutorial net): conv 32@5x5 and 64@5x5 SAME with ReLU and max-pool 2, " +
                "fc 1024, dropout 0.5, fc 10; truncated-normal init sd 0.1, biases 0.1; logits (their softmax-twice loss not reproduced).",
                "MNIST", $"{ImageInput}; paper: 1x28x28 (size divisible by 4)", FbMnistCnn.DefaultDropout, 0, true, false),
            minimumImageSize: null,
            (o, d, i) => new FbMnistCnn(o.InputChannels, o.ImageSize, o.NumClasses, d, i), ModelSize.FbMnistCnn),
        LanguageModel(new ModelInfo(PtbSmallLstmName, ModelKind.LanguageModel,
                "PTB small LSTM: Zaremba et al.'s small model as Freeman & Bruna's code uses it (LaunchScripts/PTBRNN.py): embedding, 2 x 200 LSTM, " +
                "no dropout, uniform [-0.1, 0.1] init, decoder with bias, ~4.65 M weights.",
                "Penn Treebank, words (vocabulary 10,000)", "token ids (B, T), Int64, in [0, V); paper: V = 10,000, T = 20",
                0, 0, true, true),
            hiddenSize: 200, layers: 2, embedTokens: true, decoderBias: true, initialisationRange: 0.1),
        Classifier(new ModelInfo(LeNet5Name, ModelKind.Classifier, "HTR authors' LeNet (yashkhasbage25/HTR network.py): conv 6@5x5 and 16@5x5 with ReLU and max-pool 2, fc 120, fc 84, no BatchNorm, input zero-padded to 32x32 (their Pad), 61,706 weights.", "Fashion-MNIST", $"{ImageInput}; paper: 1x28x28 padded to 32x32 (even sizes below 32)", 0, 0, true, false), minimumImageSize: SpatialSize.SmallestValidImage(LeNet5.FeatureMapSize), (o, d, i) => new LeNet5(o.InputChannels, o.ImageSize, o.NumClasses, d, i), ModelSize.LeNet5),
        .. Mlp.ZooVariants.Select(v => Classifier(v.Info, minimumImageSize: null, v.Build, v.Estimate)),
    ];

    /// <summary>The names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = Entries.Select(entry => entry.Info.Name).ToArray();

    /// <summary>Kind, description, data set, input shape and default dropouts of a network.</summary>
    /// <exception cref="ArgumentException">The name is not one of <see cref="Names"/>.</exception>
    public static ModelInfo Describe(string name) => Find(name).Info;

    /// <summary>
    /// Builds a freshly initialised network (on the default device, float32). Draws from libtorch's global generator,
    /// so seed it (<see cref="TorchRuntime.Seed"/>) for reproducible weights.
    /// </summary>
    /// <exception cref="ArgumentException">Unknown name or invalid options; the message says which and why.</exception>
    public static nn.Module Create(string name, ModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        TorchRuntime.EnsureLoadable();
        var entry = Find(name);
        return entry.Build(options, entry.Info);
    }

    /// <summary>
    /// The parameter count of the network <see cref="Create"/> would build with <paramref name="options"/>, exactly,
    /// and a rough count of the values a training pass keeps per example (<see cref="ModelSizeEstimate"/>), worked out
    /// from the architecture without building anything: what memory checks use before a huge allocation (a hidden size
    /// of a million would otherwise allocate until the machine swaps). Checks the options as <see cref="Create"/> does.
    /// </summary>
    /// <exception cref="ArgumentException">Unknown name or invalid options; the message says which and why.</exception>
    public static ModelSizeEstimate EstimateSize(string name, ModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var entry = Find(name);
        return entry.Estimate(options, entry.Info);
    }

    /// <summary>Number of scalar parameters (weights and biases, not BatchNorm running statistics).</summary>
    public static long CountParameters(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        return module.parameters().Sum(parameter => parameter.numel());
    }

    internal static void CheckDropout(double probability, string what, string model)
    {
        // Written so that NaN fails too.
        if (!(probability >= 0 && probability < 1))
            throw new ArgumentException($"{model}: {what} must be in [0, 1); got {probability}.");
    }

    private static Entry Find(string name) =>
        Entries.FirstOrDefault(entry => entry.Info.Name == name)
        ?? throw new ArgumentException($"Unknown model '{name}'. Known models: {string.Join(", ", Entries.Select(e => e.Info.Name))}.", nameof(name));

    private static Entry Classifier(ModelInfo info, int? minimumImageSize, Func<ModelOptions, double, double, nn.Module> build,
        Func<int, int, int, ModelSizeEstimate> estimate) =>
        new(info,
            (options, described) =>
            {
                var (dropout, inputDropout) = CheckClassifierOptions(options, described, minimumImageSize);
                return build(options, dropout, inputDropout);
            },
            (options, described) =>
            {
                CheckClassifierOptions(options, described, minimumImageSize);
                return estimate(options.InputChannels, options.ImageSize, options.NumClasses);
            });

    private static (double Dropout, double InputDropout) CheckClassifierOptions(ModelOptions options, ModelInfo described, int? minimumImageSize)
    {
        var (dropout, inputDropout) = ResolveDropout(options, described);
        CheckPositive(options.InputChannels, nameof(ModelOptions.InputChannels), described.Name);
        CheckPositive(options.ImageSize, nameof(ModelOptions.ImageSize), described.Name);
        CheckPositive(options.NumClasses, nameof(ModelOptions.NumClasses), described.Name);
        if (minimumImageSize is { } minimum && options.ImageSize < minimum)
            throw new ArgumentException(
                $"{described.Name} needs images of at least {minimum}x{minimum} (the paper uses 28x28) so its " +
                $"convolution and pooling windows fit; got ImageSize = {options.ImageSize}.");
        foreach (var (option, value) in new[]
                 {
                     (nameof(ModelOptions.VocabularySize), options.VocabularySize),
                     (nameof(ModelOptions.HiddenSize), options.HiddenSize),
                     (nameof(ModelOptions.Layers), options.Layers),
                 })
        {
            if (value is not null)
                throw new ArgumentException($"{described.Name} is an image classifier; {option} applies only to the language models.");
        }
        return (dropout, inputDropout);
    }

    private static Entry LanguageModel(ModelInfo info, int hiddenSize, int layers, bool embedTokens, bool decoderBias, double initialisationRange) =>
        new(info,
            (options, described) =>
            {
                var (dropout, inputDropout, vocabulary) = CheckLanguageModelOptions(options, described);
                return new LstmLanguageModel(described.Name, vocabulary, options.HiddenSize ?? hiddenSize, options.Layers ?? layers,
                    embedTokens, decoderBias, dropout, inputDropout, initialisationRange);
            },
            (options, described) =>
            {
                var (_, _, vocabulary) = CheckLanguageModelOptions(options, described);
                return ModelSize.Lstm(vocabulary, options.HiddenSize ?? hiddenSize, options.Layers ?? layers, embedTokens, decoderBias);
            });

    private static (double Dropout, double InputDropout, int Vocabulary) CheckLanguageModelOptions(ModelOptions options, ModelInfo described)
    {
        var (dropout, inputDropout) = ResolveDropout(options, described);
        var vocabulary = options.VocabularySize
            ?? throw new ArgumentException(
                $"{described.Name} is a language model: set ModelOptions.VocabularySize to the corpus vocabulary size ({described.InputShape}).");
        CheckPositive(vocabulary, nameof(ModelOptions.VocabularySize), described.Name);
        if (options.HiddenSize is { } hidden) CheckPositive(hidden, nameof(ModelOptions.HiddenSize), described.Name);
        if (options.Layers is { } layerCount) CheckPositive(layerCount, nameof(ModelOptions.Layers), described.Name);
        return (dropout, inputDropout, vocabulary);
    }

    private static (double Dropout, double InputDropout) ResolveDropout(ModelOptions options, ModelInfo info)
    {
        var dropout = options.Dropout ?? info.DefaultDropout;
        CheckDropout(dropout, "Dropout", info.Name);
        var inputDropout = options.InputDropout
            ?? (info.InputDropoutFollowsDropout ? dropout : info.DefaultInputDropout);
        CheckDropout(inputDropout, "InputDropout", info.Name);
        if (!info.SupportsInputDropout && inputDropout != 0)
            throw new ArgumentException(
                $"{info.Name} has no input dropout: its input is a one-hot character. Use Dropout (after each LSTM layer) instead.");
        return (dropout, inputDropout);
    }

    private static void CheckPositive(int value, string option, string model)
    {
        if (value <= 0) throw new ArgumentException($"{model}: {option} must be positive; got {value}.");
    }
}
