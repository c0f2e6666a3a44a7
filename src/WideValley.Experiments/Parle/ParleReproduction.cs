using System.Globalization;
using WideValley.Data;
using WideValley.Distributed;
using WideValley.Optim;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>How `reproduce parle` runs: budget, seeds, networks, arms, replicas, data, folders, what the report quotes.</summary>
public sealed record ParleRunSettings : ReproductionSettings
{
    /// <summary>The networks (zoo names), from <see cref="ParleReproduction.Networks"/>.</summary>
    public IReadOnlyList<string> Networks { get; init; } = ParleReproduction.Networks;

    /// <summary>The arms, from <see cref="ParleReproduction.Arms"/>; Parle and data-parallel SGD are always among them.</summary>
    public IReadOnlyList<string> Arms { get; init; } = ParleReproduction.Arms;

    /// <summary>Replicas of Parle and Elastic-SGD, ranks of data-parallel SGD: the MPI job's size.</summary>
    public int Replicas { get; init; } = ParleReproduction.DefaultReplicas;

    /// <summary>The CIFAR-10 binary folder; null: All-CNN-BN is skipped with the reason.</summary>
    public string? Cifar10Dir { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value (with its command-line option).</summary>
    public void Validate()
    {
        ValidateShared();
        ValidateSubset(Networks, ParleReproduction.Networks, "--networks");
        ValidateSubset(Arms, ParleReproduction.Arms, "--arms", "arm");
        foreach (var needed in new[] { ParleReproduction.ParleArm, ParleReproduction.DataParallelArm })
            if (!Arms.Contains(needed))
                throw new ArgumentException($"--arms must include {needed}: the claims compare Parle with data-parallel SGD (got {string.Join(",", Arms)})");
        if (Replicas < 2)
            throw new ArgumentException($"--replicas must be at least 2 (Parle couples replicas; with one it is Entropy-SGD), got {Replicas}");
        if (!Device.StartsWith("cpu", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"reproduce parle trains over MPI in CPU memory; device '{Device}' is not supported");
    }
}

/// <summary>The size of a network's runs at a budget.</summary>
/// <param name="TrainingImages">Training images used (null: the whole training set).</param>
/// <param name="ReplicaEpochs">Passes over those images by each replica of Parle (and Elastic-SGD).</param>
public sealed record ParleScale(long? TrainingImages, double ReplicaEpochs);

/// <summary>One training run of the reproduction (one MPI job of <see cref="ParleRunSettings.Replicas"/> ranks).</summary>
/// <param name="Network">A zoo name from <see cref="ParleReproduction.Networks"/>.</param>
/// <param name="Arm">One of <see cref="ParleReproduction.Arms"/>.</param>
/// <param name="Seed">The seed.</param>
/// <param name="Config">The complete configuration (with its <see cref="RunConfig.Distributed"/> mode).</param>
/// <param name="Folder">Its run folder.</param>
public sealed record ParlePlannedRun(string Network, string Arm, long Seed, RunConfig Config, string Folder)
{
    /// <summary>NET/ARM/seed-K, the run's name in messages.</summary>
    public string Label => $"{Network}/{Arm}/seed-{Seed}";
}

/// <summary>What the reproduction found: every planned run and its result (on rank 0; the other ranks hold no results).</summary>
/// <param name="Settings">The settings.</param>
/// <param name="Runs">Every planned run and its finished result (null: not finished, or not rank 0).</param>
/// <param name="Interrupted">Cancelled during a run, whose checkpoint was saved.</param>
/// <param name="Files">The report's files, full paths (empty on ranks other than 0).</param>
public sealed record ParleOutcome(ParleRunSettings Settings, IReadOnlyList<(ParlePlannedRun Run, FinishedRun? Result)> Runs, bool Interrupted,
    IReadOnlyList<string> Files)
{
    /// <summary>The Markdown report (rank 0).</summary>
    public string MarkdownFile => Files.First(f => f.EndsWith(".md", StringComparison.Ordinal));
}

/// <summary>
/// `reproduce parle` (issue 22 §6; protocol ours): Parle (Chaudhari et al. 2017, arXiv 1707.00424) with K replicas, one
/// per MPI rank, against data-parallel SGD over the same K ranks (each rank a slice of 128 of every global minibatch of
/// K x 128), and Elastic-SGD, at the same number of gradient evaluations summed over the ranks, evaluated on the same
/// grid of effective epochs. Every rank runs this code; rank 0 decides what the run folders hold and broadcasts it, and
/// writes the runs' files and the report. Finished runs are never trained again; interrupted ones resume.
/// </summary>
public static class ParleReproduction
{
    /// <summary>The experiment's name.</summary>
    public const string Name = "parle";

    /// <summary>The Parle arm.</summary>
    public const string ParleArm = "parle";

    /// <summary>The data-parallel SGD arm.</summary>
    public const string DataParallelArm = "data-parallel";

    /// <summary>The Elastic-SGD arm.</summary>
    public const string ElasticArm = "elastic";

    /// <summary>The arms, Parle first.</summary>
    public static IReadOnlyList<string> Arms { get; } = [ParleArm, DataParallelArm, ElasticArm];

    /// <summary>The networks: LeNet on Fashion-MNIST (standing in for MNIST), All-CNN-BN on CIFAR-10 (when given).</summary>
    public static IReadOnlyList<string> Networks { get; } = ["lenet", "allcnn"];

    /// <summary>Replicas (ranks) by default: the paper's n = 3.</summary>
    public const int DefaultReplicas = 3;

    /// <summary>Minibatch per replica / per rank (ours, the authors' 128).</summary>
    public const int BatchSize = 128;

    /// <summary>Learning rate of data-parallel SGD and of Parle's and Elastic-SGD's outer step (the authors: the SGD baseline's).</summary>
    public const double LearningRate = 0.1;

    /// <summary>Nesterov momentum of every arm (the authors' 0.9).</summary>
    public const double Momentum = 0.9;

    /// <summary>
    /// The spacing of the evaluation grid in effective epochs summed over the ranks (ours): one effective epoch, i.e.
    /// every pass of data-parallel SGD's global minibatch and every 1/K of a replica's pass.
    /// </summary>
    public const double EvaluationSpacing = 1;

    /// <summary>The network's report title.</summary>
    public static string Title(string network) => network == "allcnn" ? "All-CNN-BN (CIFAR-10)" : "LeNet (Fashion-MNIST)";

    /// <summary>The arm's report title.</summary>
    public static string ArmTitle(string arm) => arm switch
    {
        ParleArm => "Parle",
        DataParallelArm => "data-parallel SGD",
        ElasticArm => "Elastic-SGD",
        _ => arm,
    };

    /// <summary>The whole training set of a network's data.</summary>
    public static long FullTrainingSet(string network) => network == "allcnn" ? 50_000 : 60_000;

    /// <summary>The budgets (ours; see docs/parle-reproduction.md).</summary>
    public static ParleScale Scale(string network, Budget budget) => budget switch
    {
        // Two of Parle's synchronisations (2 x L = 50 minibatches per replica), two thirds of a pass over 9,600 images
        // (two passes of data-parallel SGD's 3 x 128 minibatch); 9,600 fit in the tests' 10,000-image subset.
        Budget.Smoke => new(9_600, 50.0 * BatchSize / 9_600),
        Budget.Small => new(network == "allcnn" ? 10_000 : 12_000, 5),
        // The authors' "5-10 epochs are sufficient", at its upper end, on the whole training set.
        Budget.Paper => new(null, 10),
        _ => throw new ArgumentOutOfRangeException(nameof(budget), budget, "unknown budget"),
    };

    /// <summary>What each budget means, for reports and --help.</summary>
    public static string DescribeBudget(Budget budget) => budget switch
    {
        Budget.Paper => "all training images (60,000 Fashion-MNIST, 50,000 CIFAR-10), 10 epochs per replica (the authors' \"5-10 epochs\"), data-parallel SGD the same gradient evaluations",
        Budget.Small => "12,000 Fashion-MNIST (10,000 CIFAR-10) training images, 5 epochs per replica, data-parallel SGD the same gradient evaluations",
        Budget.Smoke => "9,600 training images, 50 minibatches per rank (two Parle synchronisations, two thirds of an epoch per replica): for checking that everything runs, not for results",
        _ => throw new ArgumentOutOfRangeException(nameof(budget)),
    };

    /// <summary>Why a network cannot run (null: it can).</summary>
    public static string? SkipReason(ParleRunSettings s, string network) =>
        network == "allcnn" && s.Cifar10Dir is null ? "no CIFAR-10 folder was given (--cifar10-dir DIR with the binary version's files)" : null;

    /// <summary>Minibatches of <see cref="BatchSize"/> in one pass of a replica over <paramref name="trainingImages"/>.</summary>
    public static long MinibatchesPerReplicaEpoch(long trainingImages) => (trainingImages + BatchSize - 1) / BatchSize;

    /// <summary>
    /// The authors' growth of both couplings per outer step, gdot = 0.5 / (minibatches per epoch) (docs/parle.md; the
    /// options' default is this value at 500 minibatches per epoch).
    /// </summary>
    public static double CouplingGrowth(long trainingImages) => 0.5 / MinibatchesPerReplicaEpoch(trainingImages);

    /// <summary>
    /// Effective epochs summed over the ranks (gradient evaluations x 128 / training images, all ranks together) of a run
    /// whose trainer counted <paramref name="trainerEffectiveEpochs"/>: data-parallel runs count passes of the global
    /// minibatch, which are that already; replica runs count one replica's passes, K times fewer.
    /// </summary>
    public static double TotalEffectiveEpochs(RunConfig config, double trainerEffectiveEpochs, int replicas) =>
        config.Distributed == DistributedTraining.DataParallelName ? trainerEffectiveEpochs : trainerEffectiveEpochs * replicas;

    /// <summary>
    /// The arms of <paramref name="network"/> for a seed (ours): batch 128 per rank, constant learning rate 0.1, Nesterov
    /// 0.9, no weight decay. Parle: its options' defaults (the authors' L = 25, gamma 0.01 to 1, rho 1 to 10, inner
    /// Nesterov 0.9 at 0.1) with both couplings growing by the authors' 0.5 / (minibatches per epoch). Elastic-SGD: the
    /// same rho. Budgets: replicas <see cref="ParleScale.ReplicaEpochs"/> each, data-parallel SGD K times as many passes
    /// of its K-times larger minibatch, which is the same number of gradient evaluations on every rank.
    /// </summary>
    public static IReadOnlyDictionary<string, RunConfig> ArmsOf(ParleRunSettings s, string network, long seed)
    {
        s.Validate();
        if (!Networks.Contains(network)) throw new ArgumentException($"unknown network '{network}'");
        var scale = Scale(network, s.Budget);
        var images = scale.TrainingImages ?? FullTrainingSet(network);
        var growth = CouplingGrowth(images);
        var k = s.Replicas;
        var total = scale.ReplicaEpochs * k;
        var every = EvaluationSpacing;
        var common = new RunConfig
        {
            Model = network,
            Data = network == "allcnn" ? DatasetCatalog.Cifar10Name : DatasetCatalog.FashionMnist,
            DataDir = network == "allcnn" ? s.Cifar10Dir : s.FashionMnistDir,
            BatchSize = BatchSize,
            LrSchedule = "const",
            MaxTrainSamples = scale.TrainingImages,
            Seed = seed,
            Threads = s.Threads,
            Device = s.Device,
            TensorBoard = false,
        };
        RunConfig Replicas(RunConfig c, string mode) => c with
        {
            Distributed = mode,
            // The effective-epoch budget ends the run: a trainer epoch of Parle is L passes.
            Epochs = (int)Math.Ceiling(scale.ReplicaEpochs) + 1,
            EffectiveEpochBudget = scale.ReplicaEpochs,
            EvalEveryEffectiveEpochs = every / k,
        };
        var defaults = new ParleOptions();
        var parle = new ParleOptions
        {
            LearningRate = LearningRate,
            Momentum = Momentum,
            Nesterov = true,
            ElasticRhoGrowth = growth,
            LocalEntropy = defaults.LocalEntropy with { Scope = new ExponentialScope(0.01, growth) },
        };
        var elastic = new ElasticSgdOptions
        {
            LearningRate = LearningRate,
            Momentum = Momentum,
            Nesterov = true,
            ElasticRho = defaults.ElasticRho,
            ElasticRhoGrowth = growth,
            ElasticRhoMax = defaults.ElasticRhoMax,
        };
        var arms = new Dictionary<string, RunConfig>
        {
            [ParleArm] = Replicas(common.WithOptimizer(parle), DistributedTraining.ParleName),
            [DataParallelArm] = common.WithOptimizer(new SgdOptions { LearningRate = LearningRate, Momentum = Momentum, Nesterov = true }) with
            {
                Distributed = DistributedTraining.DataParallelName,
                Epochs = (int)Math.Ceiling(total) + 1,
                EffectiveEpochBudget = total,
                // Its epoch ends are the grid when it is one effective epoch (evaluating at 1.0 and again at the epoch's end a
                // step later would charge its wall time twice).
                EvalEveryEffectiveEpochs = every < 1 ? every : null,
            },
            [ElasticArm] = Replicas(common.WithOptimizer(elastic), DistributedTraining.ElasticName),
        };
        return s.Arms.ToDictionary(a => a, a => arms[a]);
    }

    /// <summary>RUNS/parle-BUDGET/NET/kK/ARM/seed-S: runs of another replica count never share a folder.</summary>
    public static string RunFolder(ParleRunSettings s, string network, string arm, long seed) =>
        Path.Combine(s.RunsRoot, $"{Name}-{Budgets.Name(s.Budget)}", network, string.Create(CultureInfo.InvariantCulture, $"k{s.Replicas}"), arm, $"seed-{seed}");

    /// <summary>Every run of the networks that can run, seeds outermost (a partial reproduction has every network and arm at the first seeds).</summary>
    /// <exception cref="ArgumentException">Invalid settings or a run configuration that cannot run.</exception>
    public static IReadOnlyList<ParlePlannedRun> Plan(ParleRunSettings s)
    {
        s.Validate();
        var runs = new List<ParlePlannedRun>();
        foreach (var seed in s.SeedValues)
            foreach (var network in s.Networks.Where(n => SkipReason(s, n) is null))
            {
                var arms = ArmsOf(s, network, seed);
                foreach (var arm in s.Arms)
                {
                    RunSetup.Validate(arms[arm]);
                    runs.Add(new ParlePlannedRun(network, arm, seed, arms[arm], RunFolder(s, network, arm, seed)));
                }
            }
        return runs;
    }

    /// <summary>
    /// What a run folder holds, refusing one whose run was made by another number of ranks (the replicas are part of the
    /// run: none can be dropped or invented, and data-parallel SGD's global minibatch depends on them).
    /// </summary>
    /// <exception cref="InvalidDataException">The folder holds a run with other settings or of another number of ranks.</exception>
    public static RunFolderState Inspect(ParlePlannedRun run, int ranks)
    {
        var state = RunFolders.Inspect(run.Folder, run.Config);
        var checkpoint = Path.Combine(run.Folder, Trainer.CheckpointFileName);
        if (state != RunFolderState.Empty && File.Exists(checkpoint))
        {
            var stored = Checkpoint.ReadMeta(Checkpoint.SelectIntact(checkpoint).Path).WorldSize ?? 1;
            if (stored != ranks)
                throw new InvalidDataException(
                    $"{run.Folder} holds a run of {stored} rank{(stored == 1 ? "" : "s")}; this job has {ranks}. Its replicas (or global minibatch) are part of the run: " +
                    $"launch with mpirun -np {stored} --replicas {stored}, or delete that run folder to train it again");
        }
        return state;
    }

    /// <summary>
    /// Looks at every run folder first (on rank 0, the answer broadcast; a folder holding another run is an error on every
    /// rank before anything trains), trains what is missing (unless <see cref="ReproductionSettings.ReportOnly"/>) with
    /// every rank of <paramref name="collectives"/>, and writes the report on rank 0 from every finished run. Cancelling
    /// saves the current run's checkpoint and still writes the report of what has finished. A collective call.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid settings, or a job whose size is not <see cref="ParleRunSettings.Replicas"/>.</exception>
    /// <exception cref="InvalidDataException">A folder holds a run with other settings or of another number of ranks.</exception>
    /// <exception cref="DatasetNotFoundException">The data is missing and there is something to train.</exception>
    public static ParleOutcome Run(ParleRunSettings s, ICollectives collectives, IProgress<ExperimentEvent>? progress = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(collectives);
        var plan = Plan(s);
        var root = collectives.Rank == 0;
        if (!s.ReportOnly && collectives.Size != s.Replicas)
            throw new ArgumentException($"--replicas {s.Replicas} needs an MPI job of {s.Replicas} ranks (mpirun -np {s.Replicas}); this job has {collectives.Size}");
        var states = RankAgreement.FromRoot(collectives, plan.Count, () => [.. plan.Select(r => (double)(int)Inspect(r, s.Replicas))])
            .Select(v => (RunFolderState)(int)v).ToList();
        var todo = plan.Where((r, i) => states[i] is RunFolderState.Empty or RunFolderState.Resumable).ToList();
        if (!s.ReportOnly)
            foreach (var network in todo.Select(r => r.Network).Distinct())
                DatasetCatalog.Locate(network == "allcnn" ? DatasetCatalog.Cifar10Name : DatasetCatalog.FashionMnist,
                    network == "allcnn" ? s.Cifar10Dir : s.FashionMnistDir);
        if (root) progress?.Report(new ComparisonPlanned(Name, plan.Count, plan.Count - todo.Count, todo.Count, s.ReportOnly));
        var interrupted = false;
        if (!s.ReportOnly)
            for (var i = 0; i < todo.Count && !interrupted; i++)
            {
                // Ranks may see a stop request at different times; rank 0's view decides for all.
                if (RankAgreement.FromRoot(collectives, () => cancellation.IsCancellationRequested))
                {
                    interrupted = true;
                    break;
                }
                var result = TrainOnRanks(collectives, todo[i], new RunPosition(i + 1, todo.Count), root ? progress : null, cancellation);
                interrupted = result?.Status == TrainingStatus.Interrupted;
            }
        IReadOnlyList<(ParlePlannedRun, FinishedRun?)> results = [.. plan.Select(r => (r, (FinishedRun?)null))];
        IReadOnlyList<string> files = [];
        if (root)
        {
            results = [.. plan.Select(r => (r, RunFolders.Inspect(r.Folder, r.Config) is RunFolderState.Finished or RunFolderState.Diverged ? RunFolders.Read(r.Folder) : null))];
            files = ParleReport.Write(s, results, message => progress?.Report(new ExperimentWarning(message)));
        }
        collectives.Barrier();
        return new ParleOutcome(s, results, interrupted, files);
    }

    /// <summary>
    /// Trains one run with every rank, as <c>train --distributed</c> does: rank 0 locks the folder and judges again under
    /// the lock what it holds (the answer broadcast), every rank prepares the run with the job's collectives, and the
    /// trainer writes on rank 0. Returns null when the run finished meanwhile.
    /// </summary>
    static TrainingResult? TrainOnRanks(ICollectives collectives, ParlePlannedRun run, RunPosition position, IProgress<ExperimentEvent>? progress,
        CancellationToken cancellation)
    {
        IDisposable? claim = null;
        TrainingResult result;
        try
        {
            var state = (RunFolderState)(int)RankAgreement.FromRoot(collectives, 1, () =>
            {
                claim = RunFolders.Lock(run.Folder);
                return [(int)Inspect(run, collectives.Size)];
            })[0];
            if (state is RunFolderState.Finished or RunFolderState.Diverged)
            {
                progress?.Report(new TrainingFinishedElsewhere(run.Label, position));
                return null;
            }
            var resume = state == RunFolderState.Resumable;
            progress?.Report(new TrainingStarted(run.Label, run.Folder, resume, position));
            using var prepared = RunSetup.Prepare(run.Config, run.Folder, message => progress?.Report(new TrainingLog(run.Label, message)), collectives);
            var trainer = prepared.CreateTrainer();
            var epochs = prepared.TrainerOptions.Epochs;
            if (progress is not null)
            {
                trainer.StepCompleted = p => progress.Report(new TrainingStepCompleted(run.Label, p));
                trainer.EpochCompleted = m => progress.Report(new TrainingEpochCompleted(run.Label, m, epochs));
                trainer.Notice = message => progress.Report(new TrainingLog(run.Label, message));
            }
            using (cancellation.Register(trainer.RequestStop))
                result = trainer.Run(resume);
        }
        finally
        {
            claim?.Dispose();
        }
        progress?.Report(new TrainingEnded(run.Label, run.Folder, result));
        return result;
    }
}
