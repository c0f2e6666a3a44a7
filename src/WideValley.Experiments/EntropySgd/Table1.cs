using WideValley.Data;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>
/// Table 1 of Chaudhari et al. (ICLR 2017): Entropy-SGD against its SGD / Adam baseline on five networks, with the
/// hyper-parameters of Sec. 5 (listed in docs/paper-vs-reference.md and ../shared/paper-notes.md). Builds the run
/// configurations for a budget and a seed; running and reporting is the caller's.
/// </summary>
public static class Table1
{
    /// <summary>The five rows of Table 1 with the paper's numbers (mean, standard deviation, epochs of each arm), in the paper's order.</summary>
    public static IReadOnlyList<ComparisonRow> Rows { get; } =
    [
        new("mnistfc", "mnistfc", ComparisonMetric.ErrorPercent, new(1.37, 0.03, 120), new(1.39, 0.03, 66), "MNIST"),
        new("lenet", "LeNet", ComparisonMetric.ErrorPercent, new(0.50, 0.01, 80), new(0.51, 0.01, 100), "MNIST"),
        new("allcnn", "All-CNN-BN", ComparisonMetric.ErrorPercent, new(7.81, 0.09, 160), new(7.71, 0.19, 180), "CIFAR-10"),
        new("ptb-lstm", "PTB-LSTM", ComparisonMetric.Perplexity, new(77.656, 0.171, 25), new(78.6, 0.26, 55), "Penn Treebank"),
        new("char-lstm", "char-LSTM", ComparisonMetric.Perplexity, new(1.217, 0.005, 25), new(1.226, 0.01, 40), "War and Peace"),
    ];

    /// <summary>The names of <see cref="Rows"/>, in the same order, as the CLI accepts them.</summary>
    public static IReadOnlyList<string> RowNames { get; } = Rows.Select(r => r.Name).ToList();

    /// <summary>Training images the small budget keeps (a fifth of MNIST's 60,000); the test set stays whole.</summary>
    public const long SmallBudgetTrainingImages = 12_000;

    /// <summary>Training images of a smoke run.</summary>
    public const long SmokeTrainingImages = 512;

    /// <summary>Effective epochs after which a smoke run stops (a few minibatches).</summary>
    public const double SmokeEffectiveEpochs = 0.25;

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => "the paper's epochs, schedules and data",
        Budget.Small => $"the paper's epochs and schedules on the first {SmallBudgetTrainingImages:N0} training images (image rows; the language rows run as in the paper), whole test set",
        Budget.Smoke => $"a few minibatches: at most {SmokeEffectiveEpochs} effective epochs of one epoch, image rows on {SmokeTrainingImages} training images; for checking that everything runs, not for results",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <exception cref="ArgumentException">Unknown row name.</exception>
    public static ComparisonRow Row(string name) =>
        Rows.FirstOrDefault(r => r.Name == name)
        ?? throw new ArgumentException($"unknown Table 1 row '{name}'; the rows are {string.Join(", ", RowNames)}");

    /// <summary>
    /// Parses a comma-separated row list, keeping the paper's order and refusing unknown or repeated names.
    /// </summary>
    /// <exception cref="ArgumentException">Empty list, unknown or repeated row.</exception>
    public static IReadOnlyList<ComparisonRow> ParseRows(string text) =>
        NameLists.Parse(text, Rows, r => r.Name, Row, "--rows", $"--rows must name at least one row of {string.Join(", ", RowNames)}");

    /// <summary>Why a row cannot run with this data (null: it can).</summary>
    public static string? SkipReason(ComparisonRow row, ExperimentData data) => row.Name switch
    {
        "allcnn" when data.Cifar10Dir is null => "no CIFAR-10 folder was given (--cifar10-dir DIR with the binary version's files)",
        "ptb-lstm" when data.PtbDir is null => "no Penn Treebank folder was given (--ptb-dir DIR with ptb.train.txt, ptb.valid.txt, ptb.test.txt)",
        "char-lstm" when data.Corpus is null => "no text corpus was given (--corpus FILE, any UTF-8 text, e.g. /usr/share/games/fortunes/fortunes)",
        _ => null,
    };

    /// <summary>The dataset a row trains on, as reports name it.</summary>
    public static string DatasetOf(ComparisonRow row, ExperimentData data) => row.Name switch
    {
        "mnistfc" or "lenet" => data.MnistRowsDataset,
        "allcnn" => DatasetCatalog.Cifar10Name,
        "ptb-lstm" => RunSetup.Ptb,
        _ => data.Corpus is null ? RunSetup.Text : $"text ({Path.GetFileName(data.Corpus)})",
    };

    /// <summary>
    /// The baseline and the local-entropy arm of <paramref name="row"/> for one seed at a budget. Every setting is the
    /// paper's (Sec. 5.2-5.4); the budget only shortens the run or shrinks the training set.
    /// </summary>
    /// <exception cref="ArgumentException">The row cannot run with this data (see <see cref="SkipReason"/>).</exception>
    public static (ExperimentArm Baseline, ExperimentArm Entropy) Arms(ComparisonRow row, Budget budget, long seed, ExperimentData data, int threads = 0, string device = "cpu")
    {
        if (SkipReason(row, data) is string why) throw new ArgumentException($"Table 1 row {row.Name}: {why}");
        var common = new RunConfig
        {
            Model = row.Name,
            Seed = seed,
            Threads = threads,
            Device = device,
            EvalTrain = true,
            TensorBoard = false,
        };
        ExperimentArm baseline, entropy;
        switch (row.Name)
        {
            case "mnistfc":
            case "lenet":
            {
                // Sec. 5.2: Adam 1e-3, divided by 5 every 30 epochs, 100 epochs; Entropy-SGD 5 epochs with L = 20,
                // eta = 1 divided by 10 after epoch 2, eta' = 0.1, eps = 1e-3, gamma0 = 1e-4 growing by 1.001 per
                // update, Nesterov momentum 0.9 in both loops, dropout lowered to 0.15 (mnistfc) / 0.25 (LeNet).
                var image = common with
                {
                    Data = data.MnistRowsDataset,
                    DataDir = data.MnistDir ?? data.FashionMnistDir,
                    BatchSize = 128,
                };
                baseline = new("adam", "Adam", false, (image with { Epochs = 100, LrSchedule = "step:5:30" })
                    .WithOptimizer(new AdamOptions { LearningRate = 1e-3 }));
                entropy = new("entropy-sgd", "Entropy-SGD", true, (image with
                {
                    Epochs = 5, LrSchedule = "after:10:2", Dropout = row.Name == "mnistfc" ? 0.15 : 0.25,
                }).WithOptimizer(new EntropySgdOptions
                {
                    LearningRate = 1, Momentum = 0.9, Nesterov = true,
                    LocalEntropy = Langevin(20, langevinLr: 0.1, noise: 1e-3, new ExponentialScope(1e-4, 1e-3)) with
                    {
                        LangevinMomentum = 0.9, LangevinNesterov = true,
                    },
                }));
                break;
            }
            case "allcnn":
            {
                // Sec. 5.3: SGD with Nesterov momentum 0.9, lr 0.1 divided by 5 every 60 epochs, 200 epochs, the
                // weight decay of All-CNN-C (1e-3); Entropy-SGD 10 epochs, L = 20, eta = 1 divided by 5 every 4
                // epochs, eta' = 0.1, eps = 1e-4, gamma0 = 0.03, gamma1 = 1e-3, dropout 0.5.
                var image = common with { Data = DatasetCatalog.Cifar10Name, DataDir = data.Cifar10Dir, BatchSize = 128 };
                baseline = new("sgd", "SGD (Nesterov)", false, (image with { Epochs = 200, LrSchedule = "step:5:60" })
                    .WithOptimizer(new SgdOptions { LearningRate = 0.1, Momentum = 0.9, Nesterov = true, WeightDecay = 1e-3 }));
                entropy = new("entropy-sgd", "Entropy-SGD", true, (image with { Epochs = 10, LrSchedule = "step:5:4", Dropout = 0.5 })
                    .WithOptimizer(new EntropySgdOptions
                    {
                        LearningRate = 1, Momentum = 0.9, Nesterov = true,
                        LocalEntropy = Langevin(20, langevinLr: 0.1, noise: 1e-4, new ExponentialScope(0.03, 1e-3)) with
                        {
                            LangevinMomentum = 0.9, LangevinNesterov = true, LangevinWeightDecay = 1e-3,
                        },
                    }));
                break;
            }
            case "ptb-lstm":
            {
                // Sec. 5.4.1: the baseline is Zaremba et al.'s large LSTM (SGD without momentum, lr 1 divided by 1.15
                // every epoch after the 14th, 55 epochs, gradient norm clipped at 10, batch 20, 35 steps); Entropy-SGD
                // 5 epochs, L = 5, gamma = 1e-3 fixed, eta = 1 divided by 10 each epoch after the third, eta' = 1,
                // eps = 1e-4, momentum 0.5.
                var text = common with { Data = RunSetup.Ptb, DataDir = data.PtbDir, BatchSize = 20, ClipGradNorm = 10 };
                baseline = new("sgd", "SGD", false, (text with { Epochs = 55, LrSchedule = ZarembaSchedule(55, 14, 1.15) })
                    .WithOptimizer(new SgdOptions { LearningRate = 1 }));
                entropy = new("entropy-sgd", "Entropy-SGD", true, (text with { Epochs = 5, LrSchedule = "after:10:3,4" })
                    .WithOptimizer(new EntropySgdOptions
                    {
                        LearningRate = 1, Momentum = 0.5,
                        LocalEntropy = Langevin(5, langevinLr: 1, noise: 1e-4, new ConstantScope(1e-3)) with { LangevinMomentum = 0.5 },
                    }));
                break;
            }
            case "char-lstm":
            {
                // Sec. 5.4.2: Adam 0.002 halved every 5 epochs, 50 epochs; Entropy-Adam 5 epochs, L = 5, gamma = 0.01
                // fixed, lr 0.01 halved every epoch, beta1 = 0.5.
                var text = common with { Data = RunSetup.Text, Corpus = data.Corpus };
                baseline = new("adam", "Adam", false, (text with { Epochs = 50, LrSchedule = "step:2:5" })
                    .WithOptimizer(new AdamOptions { LearningRate = 0.002 }));
                entropy = new("entropy-adam", "Entropy-Adam", true, (text with { Epochs = 5, LrSchedule = "step:2:1" })
                    .WithOptimizer(new EntropyAdamOptions
                    {
                        LearningRate = 0.01, Beta1 = 0.5,
                        LocalEntropy = Langevin(5, langevinLr: 0.1, noise: 1e-3, new ConstantScope(0.01)),
                    }));
                break;
            }
            default:
                throw new ArgumentException($"unknown Table 1 row '{row.Name}'");
        }
        return (Shorten(baseline, budget, row), Shorten(entropy, budget, row));
    }

    /// <summary>
    /// The comparison of <paramref name="rows"/> as <see cref="ComparisonRunner"/> runs it: every (row, arm, seed) in
    /// its <see cref="RunFolder"/>, reported as table1-DATASET[-BUDGET].md/.json with one plot per row.
    /// </summary>
    public static ComparisonRequest Comparison(IReadOnlyList<ComparisonRow> rows, ComparisonRunSettings s)
    {
        var (b, data) = (s.Budget, s.Data);
        return new ComparisonRequest
        {
            Name = "table1",
            Rows = rows,
            SkipReason = row => SkipReason(row, data),
            DatasetOf = row => DatasetOf(row, data),
            Arms = (row, seed) => Arms(row, b, seed, data, s.Threads, s.Device),
            Folder = (row, arm, seed) => RunFolder(s.RunsRoot, b, row, arm, seed),
            Seeds = s.Seeds,
            FirstSeed = s.FirstSeed,
            ReportOnly = s.ReportOnly,
            OutDir = s.OutDir,
            Report = results => new ComparisonReportInput(
                Budgets.ReportStem($"table1-{data.MnistRowsDataset}", b),
                $"Table 1 reproduced on {data.MnistRowsDataset} (budget `{Budgets.Name(b)}`)",
                Introduction(rows, b, data), b, s.CommandLine, s.Machine, results),
        };
    }

    /// <summary>The report's introduction: what is compared, at which budget, on which data.</summary>
    internal static List<string> Introduction(IReadOnlyList<ComparisonRow> rows, Budget budget, ExperimentData data)
    {
        var paragraphs = new List<string>
        {
            "Entropy-SGD (Entropy-Adam for char-LSTM) against its SGD / Adam baseline with the settings of Sec. 5 of " +
            "Chaudhari et al., *Entropy-SGD: Biasing Gradient Descent Into Wide Valleys* (ICLR 2017), Table 1. " +
            $"Budget `{Budgets.Name(budget)}`: {DescribeBudget(budget)}.",
        };
        if (rows.Any(r => r.Name is "mnistfc" or "lenet") && data.MnistDir is null)
            paragraphs.Add($"**Data.** No MNIST folder was given, so {data.MnistRowsDataset} stands in for MNIST in the mnistfc and LeNet rows. " +
                           "Its test errors are several times MNIST's, so compare Entropy-SGD with the baseline *within* a row, not " +
                           "with the paper's absolute numbers (shown for reference).");
        if (rows.Any(r => r.Name == "char-lstm") && data.Corpus is not null)
            paragraphs.Add($"**char-LSTM corpus.** `{data.Corpus}` (the paper used War and Peace), split 80/10/10 into training, validation and test text; " +
                           "perplexity is per character, exp of the mean cross-entropy in nats.");
        return paragraphs;
    }

    /// <summary>RUNS/table1-BUDGET/ROW/OPTIMIZER/seed-K.</summary>
    public static string RunFolder(string runsRoot, Budget budget, ComparisonRow row, ExperimentArm arm, long seed) =>
        Path.Combine(runsRoot, $"table1-{Budgets.Name(budget)}", row.Name, arm.Key, $"seed-{seed}");

    /// <summary>The budget's version of a paper-budget arm (see <see cref="DescribeBudget"/>).</summary>
    internal static ExperimentArm Shorten(ExperimentArm arm, Budget budget, ComparisonRow row)
    {
        var isImage = row.Name is "mnistfc" or "lenet" or "allcnn";
        var c = arm.Config;
        c = budget switch
        {
            Budget.Paper => c,
            Budget.Small => isImage ? c with { MaxTrainSamples = SmallBudgetTrainingImages } : c,
            Budget.Smoke => c with
            {
                Epochs = 1,
                EffectiveEpochBudget = SmokeEffectiveEpochs,
                MaxTrainSamples = isImage ? SmokeTrainingImages : null,
                OptimizerOptions = c.ResolvedOptimizerOptions is ILocalEntropyOptimizerOptions le
                    ? le.WithLocalEntropy(le.LocalEntropy with { L = Math.Min(le.LocalEntropy.L, 2) })
                    : c.OptimizerOptions,
            },
            _ => throw new ArgumentOutOfRangeException(nameof(budget)),
        };
        // The label names L as run, so a shortened run does not claim the paper's.
        return arm with
        {
            Config = c,
            Label = c.ResolvedOptimizerOptions is ILocalEntropyOptimizerOptions run ? $"{arm.Label} (L = {run.LocalEntropy.L})" : arm.Label,
        };
    }

    /// <summary>The paper's Langevin loop: L steps of size eta', noise eps, scope gamma(t), diagnostics every 10 steps.</summary>
    static LocalEntropyOptions Langevin(int l, double langevinLr, double noise, ScopeSchedule scope) => new()
    {
        L = l, LangevinLr = langevinLr, Noise = noise, Scope = scope, DiagnosticsEvery = 10,
    };

    /// <summary>lr 1 for <paramref name="flatEpochs"/> epochs, then divided by <paramref name="divisor"/> every epoch.</summary>
    static string ZarembaSchedule(int epochs, int flatEpochs, double divisor) =>
        "custom:" + string.Join(",", Enumerable.Range(flatEpochs + 1, epochs - flatEpochs)
            .Select(e => $"{e}={LearningRateSchedule.Format(Math.Pow(divisor, -(e - flatEpochs)))}"));
}
