using System.CommandLine;
using System.Globalization;
using WideValley.Data;
using WideValley.Distributed;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `mpirun -np 3 widevalley reproduce parle`: Parle with 3 replicas against data-parallel SGD (and Elastic-SGD) over the
/// same ranks at equal gradient evaluations, LeNet on Fashion-MNIST and All-CNN-BN on CIFAR-10 when given, as the
/// library's <see cref="ParleReproduction"/> defines and runs it. Every rank runs this command; rank 0 prints and writes.
/// Without mpirun it refuses (the claims are about replicas on several ranks), except --report-only, which trains
/// nothing. Ctrl-C saves the current run's checkpoint and still writes the report of what has finished.
/// </summary>
public static class ParleCommand
{
    /// <summary>The subcommand.</summary>
    public static Command Create(CliContext ctx)
    {
        var networks = new Option<string>("--networks")
        {
            Description = $"Networks, comma-separated: {string.Join(", ", ParleReproduction.Networks)} (allcnn needs --cifar10-dir; skipped with the reason otherwise).",
            DefaultValueFactory = _ => string.Join(",", ParleReproduction.Networks),
        };
        var arms = new Option<string>("--arms")
        {
            Description = $"Arms, comma-separated: {string.Join(", ", ParleReproduction.Arms)} (parle and data-parallel are required; elastic is Elastic-SGD).",
            DefaultValueFactory = _ => string.Join(",", ParleReproduction.Arms),
        };
        var replicas = new Option<int>("--replicas")
        {
            Description = "Replicas of Parle (ranks of data-parallel SGD); must equal mpirun's -np.",
            DefaultValueFactory = _ => ParleReproduction.DefaultReplicas,
        };
        var seeds = new Option<int>("--seeds") { Description = "Independent runs per network and arm.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<long>("--first-seed") { Description = "Seed of the first run; the others follow consecutively.", DefaultValueFactory = _ => 1L };
        var budget = ReproduceOptions.Budget();
        budget.Description = $"smoke ({ParleReproduction.DescribeBudget(Budget.Smoke)}), small ({ParleReproduction.DescribeBudget(Budget.Small)}), " +
                             $"paper ({ParleReproduction.DescribeBudget(Budget.Paper)}).";
        var runs = ReproduceOptions.Runs();
        var output = ReproduceOptions.Output();
        var cifarDir = new Option<string?>("--cifar10-dir") { Description = "CIFAR-10 binary folder; without it allcnn is skipped." };
        var fashionDir = new Option<string?>("--fashion-mnist-dir") { Description = "Folder with the Fashion-MNIST files (default: the usual search)." };
        var threads = new Option<int>("--threads") { Description = "libtorch threads per rank (0 = libtorch's default; 1 suits several ranks on one machine).", DefaultValueFactory = _ => 1 };
        var reportOnly = new Option<bool>("--report-only") { Description = "Train nothing; write the report from the runs that have finished (runs without mpirun)." };
        var command = new Command(ParleReproduction.Name,
            "Parle (3 replicas, the authors' hyper-parameters) against data-parallel SGD and Elastic-SGD over the same MPI ranks at equal gradient evaluations, " +
            "LeNet (Fashion-MNIST) and All-CNN-BN (CIFAR-10, when given); test error, wall time and the abstract's claims judged; writes parle[-BUDGET].md/.json and plots. " +
            "Launch under MPI: mpirun -np 3 widevalley reproduce parle ...")
        {
            networks, arms, replicas, seeds, firstSeed, budget, runs, output, cifarDir, fashionDir, threads, reportOnly,
        };
        command.SetAction(p =>
        {
            var b = Budgets.Parse(p.GetValue(budget)!);
            var threadCount = p.GetValue(threads);
            static List<string> List(string text) => [.. text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];
            var networkList = List(p.GetValue(networks)!);
            var armList = List(p.GetValue(arms)!);
            var k = p.GetValue(replicas);
            var cifarPath = ReproduceOptions.ExistingFolder(p.GetValue(cifarDir), "--cifar10-dir");
            var c = CultureInfo.InvariantCulture;
            var commandLine = string.Create(c, $"mpirun -np {k} widevalley reproduce {ParleReproduction.Name} --budget {Budgets.Name(b)} --seeds {p.GetValue(seeds)}") +
                              (networkList.SequenceEqual(ParleReproduction.Networks) ? "" : $" --networks {string.Join(",", networkList)}") +
                              (armList.SequenceEqual(ParleReproduction.Arms) ? "" : $" --arms {string.Join(",", armList)}") +
                              (k == ParleReproduction.DefaultReplicas ? "" : string.Create(c, $" --replicas {k}")) +
                              (p.GetValue(firstSeed) == 1 ? "" : string.Create(c, $" --first-seed {p.GetValue(firstSeed)}")) +
                              (cifarPath is null ? "" : " --cifar10-dir CIFAR10_DIR") +
                              (threadCount == 1 ? "" : string.Create(c, $" --threads {threadCount}"));
            var settings = new ParleRunSettings
            {
                Budget = b,
                Seeds = p.GetValue(seeds),
                FirstSeed = p.GetValue(firstSeed),
                Networks = networkList,
                Arms = armList,
                Replicas = k,
                Cifar10Dir = cifarPath,
                FashionMnistDir = ReproduceOptions.ExistingFolder(p.GetValue(fashionDir), "--fashion-mnist-dir"),
                Threads = threadCount,
                RunsRoot = Path.GetFullPath(p.GetValue(runs)!),
                OutDir = Path.GetFullPath(p.GetValue(output)!),
                ReportOnly = p.GetValue(reportOnly),
                CommandLine = commandLine,
                Machine = ReproduceOptions.Machine(threadCount),
            };
            ReproduceOptions.CheckBeforeTraining(() =>
            {
                settings.Validate();
                if (threadCount < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {threadCount}");
                if (File.Exists(settings.RunsRoot)) throw new ArgumentException($"--runs {settings.RunsRoot} is a file; give a folder for the run folders");
                if (!settings.ReportOnly)
                {
                    if (!Collectives.LaunchedByMpi)
                        throw new ArgumentException(
                            $"reproduce parle trains {k} replicas as the {k} ranks of an MPI job, and this process was not started by an MPI launcher. Run it as " +
                            $"`mpirun -np {k} widevalley reproduce parle ...` (on one machine as root: mpirun --allow-run-as-root --oversubscribe --bind-to none -np {k} ...), " +
                            "or pass --report-only to write the report of finished runs in one process");
                    if (settings.Networks.Contains("lenet")) DatasetCatalog.Locate(DatasetCatalog.FashionMnist, settings.FashionMnistDir);
                    if (settings.Networks.Contains("allcnn") && settings.Cifar10Dir is not null) DatasetCatalog.Locate(DatasetCatalog.Cifar10Name, settings.Cifar10Dir);
                }
                ParleReproduction.Plan(settings); // every run's configuration is checked before anything trains
            });
            TorchRuntime.EnsureInitialized();
            using var collectives = settings.ReportOnly && !Collectives.LaunchedByMpi ? new SingleProcessCollectives() : Collectives.Create();
            if (!settings.ReportOnly && collectives.Size != k)
                throw new UsageException($"--replicas {k} needs an MPI job of {k} ranks (mpirun -np {k}); this job has {collectives.Size}");
            var root = collectives.Rank == 0;
            if (root) ReportFolders.CheckWritable(settings.OutDir, ParleReproduction.Name);
            // Plain lines, no live progress display: mpirun gives each rank a pseudo-terminal but forwards its output line by
            // line, interleaved with the other ranks'; only rank 0 prints the experiment's log.
            var plain = new CliContext { Out = root ? ctx.Out : TextWriter.Null, Error = ctx.Error, Console = ctx.Console, Interactive = false };
            var outcome = ExperimentConsole.Run(Collectives.LaunchedByMpi ? plain : ctx, (progress, cancellation) =>
                ParleReproduction.Run(settings, collectives, root ? progress : null, cancellation));
            if (!root) return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
            var results = ParleReport.Results(settings, outcome.Runs);
            foreach (var n in results)
            {
                if (n.SkipReason is string why)
                {
                    ctx.Out.WriteLine($"{ParleReproduction.Title(n.Network)}: skipped ({why})");
                    continue;
                }
                ctx.Out.WriteLine($"{ParleReproduction.Title(n.Network)}: test error " +
                                  string.Join(", ", n.Arms.Select(a => $"{ParleReproduction.ArmTitle(a.Arm)} {Show(a.Error)}")) + " (%)");
                ctx.Out.WriteLine($"  2-4x faster: {n.SpeedText}; comparable or better error: {n.ErrorText}");
            }
            ctx.Out.WriteLine($"verdict: faster {ParleReport.Overall(results.Select(n => n.SpeedVerdict))}, error {ParleReport.Overall(results.Select(n => n.ErrorVerdict))}");
            ctx.Out.WriteLine($"report {outcome.MarkdownFile} ({outcome.Files.Count} files in {settings.OutDir})");
            return outcome.Interrupted ? ExitCodes.Interrupted : ExitCodes.Ok;
        });
        return command;
    }

    static string Show(Stat? error) => error is Stat s
        ? string.Format(CultureInfo.InvariantCulture, s.Count > 1 ? "{0:0.00} ± {1:0.00}" : "{0:0.00}", s.Mean, s.Std)
        : "n/a";
}
