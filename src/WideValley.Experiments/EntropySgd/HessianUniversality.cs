using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using WideValley.Data;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>How a network's Hessian spectrum is measured.</summary>
public enum SpectrumMethod
{
    /// <summary>The dense Hessian, one column per parameter, then every eigenvalue (LAPACK syevd).</summary>
    Exact,
    /// <summary>The extreme eigenvalues by Lanczos and the density by stochastic Lanczos quadrature.</summary>
    LanczosAndSlq,
    /// <summary>The diagonal empirical Fisher E(g²) − (E g)² over minibatch gradients, the paper's proxy for a large network.</summary>
    DiagonalFisher,
}

/// <summary>The measurement of one network at one budget.</summary>
public sealed record SpectrumPlan
{
    /// <summary>How the spectrum is measured.</summary>
    public required SpectrumMethod Method { get; init; }
    /// <summary>Evaluation samples: the first N training images, or lines of text for the char-LSTM.</summary>
    public required int Samples { get; init; }
    /// <summary>Samples per forward pass (the diagonal Fisher: per minibatch gradient).</summary>
    public required int BatchSize { get; init; }
    /// <summary>Parameter-name prefixes measured, comma-separated (null: all parameters).</summary>
    public string? Parameters { get; init; }
    /// <summary>Lanczos: eigenvalues at each end.</summary>
    public int LanczosTop { get; init; } = 10;
    /// <summary>Lanczos: most iterations per end (`hessian`'s default for up to 100 eigenvalues).</summary>
    public int LanczosSteps { get; init; } = 300;
    /// <summary>SLQ probe vectors.</summary>
    public int SlqProbes { get; init; } = 10;
    /// <summary>SLQ Lanczos steps per probe.</summary>
    public int SlqSteps { get; init; } = 90;

    /// <summary>The measurement in words, for reports.</summary>
    public string Describe()
    {
        var c = CultureInfo.InvariantCulture;
        var what = Method switch
        {
            SpectrumMethod.Exact => "exact spectrum (dense Hessian, float32)",
            SpectrumMethod.LanczosAndSlq => string.Create(c, $"Lanczos extremes (top {LanczosTop} per end, at most {LanczosSteps} steps) + SLQ density ({SlqProbes} probes x {SlqSteps} steps)"),
            _ => string.Create(c, $"diagonal Fisher (minibatches of {BatchSize})"),
        };
        return Parameters is null ? what : $"{what}, only `{Parameters}`";
    }
}

/// <summary>What seed 003 reports for one network's spectrum (Sec. 5.1, Figs. 1 and 3).</summary>
/// <param name="Figure">Where, e.g. "Fig. 1 (2 runs)".</param>
/// <param name="Data">The data the paper trained on.</param>
/// <param name="Parameters">Its parameter count.</param>
/// <param name="Optimizer">The optimizer it trained with.</param>
/// <param name="Result">What training reached, in the paper's words.</param>
/// <param name="FractionAbsBelow">Quoted fractions of |λ| &lt; t, by t.</param>
/// <param name="LambdaMax">Quoted largest eigenvalue.</param>
/// <param name="LambdaMin">Quoted most negative eigenvalue.</param>
/// <param name="Quote">The claim, as the paper words it.</param>
public sealed record PaperSpectrum(string Figure, string Data, long Parameters, string Optimizer, string Result,
    IReadOnlyDictionary<double, double> FractionAbsBelow, double? LambdaMax, double? LambdaMin, string Quote);

/// <summary>A network of Sec. 5.1.</summary>
/// <param name="Name">Name on the command line and in folders (the model's zoo name).</param>
/// <param name="Title">Name in reports, as the paper writes it.</param>
/// <param name="Kind">What is measured: the Hessian, or the diagonal Fisher for the large network.</param>
/// <param name="Paper">The paper's numbers.</param>
public sealed record UniversalityNetwork(string Name, string Title, SpectrumMethod Kind, PaperSpectrum Paper)
{
    /// <summary>Whether this is the char-LSTM, whose samples are lines of text rather than images.</summary>
    public bool IsLanguageModel => Name == HessianUniversality.CharLstm;
}

/// <summary>
/// Seed 003 Sec. 5.1, "Universality of the Hessian at local minima": small-LeNet, small-mnistfc and a small char-LSTM
/// trained to a minimum with the paper's optimizers, their Hessian spectra measured, and the diagonal Fisher of
/// All-CNN-BN. Builds the training configurations and the measurement plans per budget; training, measuring and
/// reporting are the caller's.
/// </summary>
public static class HessianUniversality
{
    /// <summary>Name of the small LeNet of Fig. 1, trained on MNIST.</summary>
    public const string SmallLeNet = "small-lenet";
    /// <summary>Name of the small fully connected MNIST network of Fig. 3a.</summary>
    public const string SmallMnistFc = "small-mnistfc";
    /// <summary>Name of the small char-LSTM of Fig. 3b, trained on lines of text.</summary>
    public const string CharLstm = "small-char-lstm";
    /// <summary>Name of All-CNN-BN of Fig. 3c (CIFAR-10): too large for a Hessian, so its diagonal Fisher is measured.</summary>
    public const string AllCnn = "allcnn";

    /// <summary>Characters per line of the char-LSTM's text (the paper's "lines of length 32").</summary>
    public const int LineLength = 32;

    /// <summary>Training images of the small budget (a fifth of MNIST's 60,000), as for Table 1.</summary>
    public const long SmallBudgetTrainingImages = Table1.SmallBudgetTrainingImages;

    /// <summary>Training images of a smoke run.</summary>
    public const long SmokeTrainingImages = 256;

    /// <summary>Evaluation samples of a smoke measurement.</summary>
    public const int SmokeSamples = 64;

    /// <summary>The Sec. 5.1 networks with the paper's numbers, in the paper's order.</summary>
    public static IReadOnlyList<UniversalityNetwork> Networks { get; } =
    [
        new(SmallLeNet, "small-LeNet", SpectrumMethod.Exact, new PaperSpectrum("Fig. 1 (2 runs)", "MNIST", 47_658, "Adam", "test error 2.4%",
            new Dictionary<double, double> { [1e-4] = 0.94 }, 40, -0.46,
            "about 94% of the eigenvalues have |λ| < 1e-4; the largest is almost 40, the most negative only -0.46")),
        new(SmallMnistFc, "small-mnistfc", SpectrumMethod.Exact, new PaperSpectrum("Fig. 3a (2 runs)", "MNIST", 50_890, "momentum SGD", "test error 2.5%",
            new Dictionary<double, double> { [1e-2] = 0.90 }, null, null,
            "the peak at zero (|λ| ≤ 1e-2) holds 90% of the eigenvalues")),
        new(CharLstm, "char-LSTM (small)", SpectrumMethod.Exact, new PaperSpectrum("Fig. 3b (5 runs)", "256 lines of 32 characters, 96-character one-hot", 32_640, "Adam",
            "re-generates the text", new Dictionary<double, double> { [1e-5] = 0.95 }, null, null,
            "almost 95% of the eigenvalues have |λ| < 1e-5")),
        new(AllCnn, "All-CNN-BN", SpectrumMethod.DiagonalFisher, new PaperSpectrum("Fig. 3c (4 runs)", "CIFAR-10", 1_600_000, "Adam", "test error 11.2%",
            new Dictionary<double, double> { [1e-5] = 0.95 }, null, null,
            "about 95% of the diagonal Fisher entries are near zero (|λ| ≤ 1e-5)")),
    ];

    /// <summary>The names of <see cref="Networks"/>, in the same order, as the CLI accepts them.</summary>
    public static IReadOnlyList<string> NetworkNames { get; } = Networks.Select(n => n.Name).ToList();

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => "training to a converged minimum on the whole training set; the exact spectrum over 1,000 training images " +
                        "(all 256 lines of text for the char-LSTM); the diagonal Fisher over 10,000 images",
        Budget.Small => $"the paper budget's epochs on the first {SmallBudgetTrainingImages:N0} training images (the char-LSTM: a third of its steps); " +
                        "Lanczos extremes and an SLQ density instead of the exact spectrum; the diagonal Fisher over 2,000 images",
        Budget.Smoke => $"a few optimizer steps on {SmokeTrainingImages} training images (64 lines of text); over {SmokeSamples} samples, the exact spectrum " +
                        "of the image networks' output layer only and a short Lanczos + SLQ run for the char-LSTM (whose Hessian-vector products " +
                        "run through time), All-CNN-BN trained two steps of 16 and its output layer's diagonal Fisher over 32 images; for checking that everything runs, not for results",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <exception cref="ArgumentException">Unknown network.</exception>
    public static UniversalityNetwork Network(string name) =>
        Networks.FirstOrDefault(n => n.Name == name)
        ?? throw new ArgumentException($"unknown network '{name}'; the Sec. 5.1 networks are {string.Join(", ", NetworkNames)}");

    /// <summary>A comma-separated list of networks in the paper's order; unknown or repeated names are refused.</summary>
    /// <exception cref="ArgumentException">Empty list, unknown or repeated network.</exception>
    public static IReadOnlyList<UniversalityNetwork> ParseNetworks(string text) =>
        NameLists.Parse(text, Networks, n => n.Name, Network, "--networks", $"--networks must name at least one of {string.Join(", ", NetworkNames)}");

    /// <summary>Why a network cannot run with this data (null: it can).</summary>
    public static string? SkipReason(UniversalityNetwork network, ExperimentData data) => network.Name switch
    {
        AllCnn when data.Cifar10Dir is null => "no CIFAR-10 folder was given (--cifar10-dir DIR with the binary version's files)",
        CharLstm when data.Corpus is null => "no text corpus was given and Debian's fortunes file is not installed (--corpus FILE, any UTF-8 text)",
        _ => null,
    };

    /// <summary>The data a network trains on, as reports name it.</summary>
    public static string DatasetOf(UniversalityNetwork network, ExperimentData data) => network.Name switch
    {
        SmallLeNet or SmallMnistFc => data.MnistRowsDataset,
        AllCnn => DatasetCatalog.Cifar10Name,
        _ => data.Corpus is null ? "text" : $"lines of {Path.GetFileName(data.Corpus)}",
    };

    /// <summary>Lines of text the char-LSTM learns to re-generate (the paper: 256).</summary>
    public static int TrainingLines(Budget budget) => budget == Budget.Smoke ? 64 : 256;

    /// <summary>RUNS/hessian-universality-BUDGET/NETWORK: the training run; its measurements go in subfolders.</summary>
    public static string RunFolder(string runsRoot, Budget budget, UniversalityNetwork network) =>
        Path.Combine(ExperimentFolder(runsRoot, budget), network.Name);

    /// <summary>RUNS/hessian-universality-BUDGET.</summary>
    public static string ExperimentFolder(string runsRoot, Budget budget) => Path.Combine(runsRoot, $"hessian-universality-{Budgets.Name(budget)}");

    /// <summary>
    /// The training run of <paramref name="network"/> at <paramref name="budget"/>. The paper gives optimizers but not
    /// schedules; the epochs here bring the training loss to a plateau at a small final learning rate, so that the
    /// weights sit at a minimum. <paramref name="characterLines"/> is the char-LSTM's text (see
    /// <see cref="WriteCharacterLines"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The network cannot run with this data (see <see cref="SkipReason"/>).</exception>
    public static RunConfig TrainingConfig(UniversalityNetwork network, Budget budget, ExperimentData data, string? characterLines, int threads = 0, string device = "cpu")
    {
        if (SkipReason(network, data) is string why) throw new ArgumentException($"{network.Name}: {why}");
        var common = new RunConfig { Model = network.Name, Seed = 1, Threads = threads, Device = device, EvalTrain = true, TensorBoard = false };
        var images = budget switch
        {
            Budget.Paper => (long?)null,
            Budget.Small => SmallBudgetTrainingImages,
            _ => SmokeTrainingImages,
        };
        // Smoke: one epoch of the few images, that is two steps of 128.
        var epochs = budget == Budget.Smoke ? 1 : 30;
        switch (network.Name)
        {
            case SmallLeNet:
                // Adam as in the paper; lr 1e-3 divided by 5 every 10 epochs ends at 4e-5, where the loss is flat.
                return (common with
                {
                    Data = data.MnistRowsDataset, DataDir = data.MnistDir ?? data.FashionMnistDir, MaxTrainSamples = images,
                    LrSchedule = "step:5:10", Epochs = epochs, BatchSize = 128,
                }).WithOptimizer(new AdamOptions { LearningRate = 1e-3 });
            case SmallMnistFc:
                // "Momentum-based SGD": heavy-ball momentum 0.9, lr 0.05 divided by 5 every 10 epochs.
                return (common with
                {
                    Data = data.MnistRowsDataset, DataDir = data.MnistDir ?? data.FashionMnistDir, MaxTrainSamples = images,
                    LrSchedule = "step:5:10", Epochs = epochs, BatchSize = 128,
                }).WithOptimizer(new SgdOptions { LearningRate = 0.05, Momentum = 0.9 });
            case AllCnn:
                // Sec. 5.1 trains All-CNN-BN with Adam (11.2% error); the Table 1 network's weight decay and dropout stay.
                // A CPU step costs about a second per 16 images, so the smoke run takes two steps of 16.
                return (common with
                {
                    Data = DatasetCatalog.Cifar10Name, DataDir = data.Cifar10Dir, MaxTrainSamples = budget == Budget.Smoke ? 32 : images,
                    LrSchedule = "step:5:10", Epochs = epochs, BatchSize = budget == Budget.Smoke ? 16 : 128,
                }).WithOptimizer(new AdamOptions { LearningRate = 1e-3, WeightDecay = 1e-3 });
            case CharLstm:
            {
                if (characterLines is null) throw new ArgumentException($"{network.Name}: the text of lines (WriteCharacterLines) is needed");
                // One step is one pass: every line is a row of the batch, from the zero state (one BPTT window of 32
                // per line), so the training loss is exactly the function whose Hessian is measured. Adam at 0.02
                // halved every fifth of the run memorises the lines (training perplexity about 1.2 here).
                var lines = TrainingLines(budget);
                var steps = budget switch { Budget.Paper => 3000, Budget.Small => 1000, _ => 3 };
                return (common with
                {
                    Data = RunSetup.Text, Corpus = characterLines, CharacterSet = TextCorpora.AsciiCharacterSet,
                    LrSchedule = $"step:2:{Math.Max(1, steps / 5)}", Epochs = steps,
                    BatchSize = lines, EvalBatchSize = lines, Unroll = LineLength,
                }).WithOptimizer(new AdamOptions { LearningRate = 0.02 });
            }
            default:
                throw new ArgumentException($"unknown network '{network.Name}'");
        }
    }

    /// <summary>
    /// How <paramref name="network"/>'s spectrum is measured at <paramref name="budget"/>. Paper: every eigenvalue of
    /// the dense Hessian (34 minutes and 18 GiB for small-LeNet on this 2-core machine; the inertia route would count
    /// one band for not much less, and gives no spectrum to plot). Small: Lanczos for the extremes and SLQ for the
    /// density, a few minutes. Smoke: the cheapest runs of both report paths, the exact spectrum of the image networks'
    /// output layer, and a few Lanczos and SLQ steps for the char-LSTM.
    /// </summary>
    public static SpectrumPlan Plan(UniversalityNetwork network, Budget budget)
    {
        var textLines = TrainingLines(budget);
        if (network.Kind == SpectrumMethod.DiagonalFisher)
            return budget switch
            {
                Budget.Paper => new SpectrumPlan { Method = SpectrumMethod.DiagonalFisher, Samples = 10_000, BatchSize = 100 },
                Budget.Small => new SpectrumPlan { Method = SpectrumMethod.DiagonalFisher, Samples = 2_000, BatchSize = 100 },
                // The output layer only: the whole network's 1.67 M entries would take longer to write and plot than to compute.
                _ => new SpectrumPlan { Method = SpectrumMethod.DiagonalFisher, Samples = 32, BatchSize = 8, Parameters = "body.conv9" },
            };
        var samples = network.IsLanguageModel ? textLines : 1000;
        var batch = network.IsLanguageModel ? textLines : 100;
        return budget switch
        {
            Budget.Paper => new SpectrumPlan { Method = SpectrumMethod.Exact, Samples = samples, BatchSize = batch },
            Budget.Small => new SpectrumPlan { Method = SpectrumMethod.LanczosAndSlq, Samples = samples, BatchSize = batch },
            // A column of an LSTM weight is a double backward through all 32 steps (about 70 ms), so even its smallest
            // tensor takes longer than a few Lanczos and SLQ steps over every parameter.
            _ when network.IsLanguageModel => new SpectrumPlan
            {
                Method = SpectrumMethod.LanczosAndSlq, Samples = textLines, BatchSize = textLines,
                LanczosTop = 3, LanczosSteps = 20, SlqProbes = 2, SlqSteps = 12,
            },
            _ => new SpectrumPlan
            {
                Method = SpectrumMethod.Exact, Samples = SmokeSamples, BatchSize = SmokeSamples,
                Parameters = network.Name == SmallLeNet ? "body.fc4" : "body.fc2",
            },
        };
    }

    /// <summary>
    /// The char-LSTM's text: <paramref name="trainingLines"/> lines of <see cref="LineLength"/> characters for
    /// training, then a tenth as many each for validation and test (the 80/10/10 split of a char corpus puts the
    /// training lines first). The source's lines are taken in order, skipping those with a character outside
    /// printable ASCII (fortune files: the "%" separators and backspace overstrikes too), with runs of white space
    /// made single spaces; the running text is cut every 32 characters and each piece ends with a newline, so the
    /// vocabulary fits the paper's 96 one-hot characters.
    /// </summary>
    /// <exception cref="ArgumentException">Too little usable text, or a line count that does not split 80/10/10.</exception>
    public static string CharacterLinesText(string source, int trainingLines)
    {
        if (trainingLines < 4 || trainingLines % 4 != 0)
            throw new ArgumentException($"the number of training lines must be a positive multiple of 4 (so that it is 80% of the text), got {trainingLines}");
        var totalLines = trainingLines / 4 * 5;
        var running = new StringBuilder();
        foreach (var rawLine in source.Split('\n'))
        {
            var line = rawLine.TrimEnd('\r');
            if (line.Trim() == "%" || line.Any(ch => ch != '\t' && (ch < ' ' || ch > '~'))) continue;
            var words = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (words.Length == 0) continue;
            if (running.Length > 0) running.Append(' ');
            running.AppendJoin(' ', words);
            if (running.Length >= totalLines * LineLength) break;
        }
        var needed = totalLines * LineLength;
        if (running.Length < needed)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"the corpus yields {running.Length:N0} characters of printable-ASCII text; {trainingLines} training lines of {LineLength} characters " +
                $"and the validation and test lines ({totalLines} lines) need {needed:N0}"));
        var text = new StringBuilder(totalLines * (LineLength + 1));
        for (var i = 0; i < totalLines; i++) text.Append(running, i * LineLength, LineLength).Append('\n');
        return text.ToString();
    }

    /// <summary>
    /// Writes <see cref="CharacterLinesText"/> of <paramref name="corpus"/> into <paramref name="folder"/> (atomically)
    /// and returns its path. The file is named by its content's hash, so that a run trained on another text is never
    /// taken for this one (its stored corpus path differs).
    /// </summary>
    /// <exception cref="DataException">The corpus cannot be read or is not UTF-8, or yields too little text.</exception>
    public static string WriteCharacterLines(string corpus, string folder, int trainingLines)
    {
        string text;
        try
        {
            text = CharacterLinesText(TextCorpora.ReadUtf8(corpus), trainingLines);
        }
        catch (ArgumentException e)
        {
            throw new DataException(corpus, e.Message);
        }
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..12];
        var path = Path.Combine(folder, $"lines-{trainingLines}x{LineLength}-{hash}.txt");
        if (!File.Exists(path)) AtomicFile.WriteAllText(path, text);
        return path;
    }
}
