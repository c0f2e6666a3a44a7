using System.Globalization;
using System.Security.Cryptography;
using WideValley.Cli;
using WideValley.Cli.Commands;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reliability;

/// <summary>A tiny trained run (small-mnistfc, 200 Fashion-MNIST samples, one epoch), the target of the measurement cases.</summary>
public sealed class BadOptionRunFixture : IDisposable
{
    private readonly TempDir dir = new("widevalley-bad-options");

    public BadOptionRunFixture()
    {
        Run = dir.File("run");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(["train", "--model", "small-mnistfc", "--optimizer", "adam", "--max-train-samples", "200", "--batch-size", "100",
            "--epochs", "1", "--threads", "1", "--no-tensorboard", "--out", Run], stdout, stderr);
        if (code != ExitCodes.Ok) throw new InvalidOperationException($"training the fixture run failed: {stderr}");
    }

    /// <summary>The run folder.</summary>
    public string Run { get; }

    /// <summary>Every file under the run folder with the SHA-256 of its bytes.</summary>
    public SortedDictionary<string, string> Snapshot() => new(
        Directory.EnumerateFiles(Run, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(Run, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))),
        StringComparer.Ordinal);

    public void Dispose() => dir.Dispose();
}

/// <summary>
/// The bad-input matrix of the command line's numeric options (issue 16, defects 11, 12 and 14 and the rest): each row
/// is a command line with one value out of range, the exit code expected (2: refused before anything is loaded), and
/// words the message must hold (the flag, the value, the allowed range). Every row also checks that nothing was
/// written: the --out folder it names does not exist afterwards, and the trained run it points at is byte for byte
/// what it was. {RUN} is that run; {OUT} a fresh folder.
/// </summary>
public sealed class BadOptionTests(BadOptionRunFixture fixture) : IClassFixture<BadOptionRunFixture>
{
    private static readonly string Cores = Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture);
    private static readonly string MaxThreads = (4 * Environment.ProcessorCount).ToString(CultureInfo.InvariantCulture);

    private const string Train = "train --max-train-samples 256 --no-tensorboard --out {OUT}";
    private const string Hessian = "hessian --checkpoint {RUN} --out {OUT}";
    private const string Landscape = "landscape --checkpoint {RUN} --out {OUT}";

    /// <summary>(command line, exit code, words the message must hold, separated by '|').</summary>
    public static TheoryData<string, int, string> Cases()
    {
        var threadsAbove = $"at most {MaxThreads}|4 x this machine's {Cores} logical cores";
        var cases = new TheoryData<string, int, string>
        {
            // ---- defect 11: non-finite numbers, refused by name (not by the JSON serialiser) ----
            { $"{Train} --clip-grad-norm NaN", 2, "--clip-grad-norm NaN is not a finite number|0 (off) or a positive number" },
            { $"{Train} --clip-grad-norm Infinity", 2, "--clip-grad-norm Infinity is not a finite number" },
            { $"{Train} --clip-grad-norm -Infinity", 2, "--clip-grad-norm -Infinity is not a finite number" },
            { $"{Train} --clip-grad-norm -1", 2, "--clip-grad-norm must be 0 (off) or a positive number, got -1" },
            { $"{Train} --lr NaN", 2, "--lr NaN is not a finite number|a positive number" },
            { $"{Train} --lr Infinity", 2, "--lr Infinity is not a finite number" },
            { $"{Train} --lr -Infinity", 2, "--lr -Infinity is not a finite number" },
            { $"{Train} --lr 0", 2, "--lr must be a positive number, got 0" },
            { $"{Train} --lr -0.1", 2, "--lr must be a positive number, got -0.1" },
            { $"{Train} --effective-epochs NaN", 2, "--effective-epochs NaN is not a finite number" },
            { $"{Train} --effective-epochs Infinity", 2, "--effective-epochs Infinity is not a finite number" },
            { $"{Train} --effective-epochs 0", 2, "--effective-epochs must be a positive number, got 0" },
            { $"{Train} --effective-epochs -2", 2, "--effective-epochs must be a positive number, got -2" },
            { $"{Train} --momentum NaN", 2, "--momentum NaN is not a finite number|in [0, 1)" },
            { $"{Train} --momentum 1", 2, "--momentum must be in [0, 1), got 1" },
            { $"{Train} --momentum -0.5", 2, "--momentum must be in [0, 1), got -0.5" },
            { $"{Train} --weight-decay -1", 2, "--weight-decay must be zero or positive, got -1" },
            { $"{Train} --weight-decay Infinity", 2, "--weight-decay Infinity is not a finite number" },
            { $"{Train} --dropout 1", 2, "--dropout must be in [0, 1), got 1" },
            { $"{Train} --dropout NaN", 2, "--dropout NaN is not a finite number" },
            { $"{Train} --dropout -0.1", 2, "--dropout must be in [0, 1), got -0.1" },
            { $"{Train} --input-dropout 1.5", 2, "--input-dropout must be in [0, 1), got 1.5" },
            { $"{Train} --input-dropout -Infinity", 2, "--input-dropout -Infinity is not a finite number" },
            { $"{Train} -o adam --beta1 NaN", 2, "--beta1 NaN is not a finite number" },
            { $"{Train} -o adam --beta2 1", 2, "--beta2 must be in [0, 1), got 1" },
            { $"{Train} -o adam --adam-eps 0", 2, "--adam-eps must be a positive number, got 0" },
            { $"{Train} -o adam --adam-eps Infinity", 2, "--adam-eps Infinity is not a finite number" },
            { $"{Train} -o entropy-sgd --langevin-lr 0", 2, "--langevin-lr must be a positive number, got 0" },
            { $"{Train} -o entropy-sgd --langevin-lr NaN", 2, "--langevin-lr NaN is not a finite number" },
            { $"{Train} -o entropy-sgd --noise -1", 2, "--noise must be zero or positive, got -1" },
            { $"{Train} -o entropy-sgd --noise NaN", 2, "--noise NaN is not a finite number" },
            { $"{Train} -o entropy-sgd --gamma -1", 2, "--gamma must be zero or positive, got -1" },
            { $"{Train} -o entropy-sgd --gamma Infinity", 2, "--gamma Infinity is not a finite number" },
            { $"{Train} -o entropy-sgd --scoping NaN", 2, "--scoping NaN is not a finite number" },
            { $"{Train} -o entropy-sgd --scoping -0.001", 2, "--scoping must be zero or positive, got -0.001" },
            { $"{Train} -o entropy-sgd --alpha 0", 2, "--alpha must be in (0, 1], got 0" },
            { $"{Train} -o entropy-sgd --alpha 1.5", 2, "--alpha must be in (0, 1], got 1.5" },
            { $"{Train} -o entropy-sgd --langevin-momentum 1", 2, "--langevin-momentum must be in [0, 1), got 1" },
            { $"{Train} -o entropy-sgd --langevin-weight-decay -1", 2, "--langevin-weight-decay must be zero or positive, got -1" },
            { $"{Train} -o entropy-sgd --diagnostics-every -1", 2, "--diagnostics-every must be at least 0 (0 = off), got -1" },
            { $"{Train} -o sgld --sgld-decay -1", 2, "--sgld-decay must be zero or positive, got -1" },
            { $"{Train} -o sgld --sgld-temperature NaN", 2, "--sgld-temperature NaN is not a finite number" },

            // ---- defect 12: threads bounded by the machine ----
            { $"{Train} --threads 100000", 2, $"--threads must be {threadsAbove}|got 100000" },
            { $"{Train} --threads 2147483647", 2, "--threads must be at most|got 2147483647" },
            { $"{Train} --threads -1", 2, "--threads must be 0 (libtorch's default) or positive, got -1" },

            // ---- defect 14: a batch larger than the training set ----
            { $"{Train.Replace("256", "1")}", 2, "--batch-size 128|--max-train-samples 1" },
            { $"{Train.Replace("256", "100")} --batch-size 101", 2, "--batch-size 101|--max-train-samples 100" },

            // ---- sizes and counts of train ----
            { Train.Replace("256", "0"), 2, "--max-train-samples must be at least 1, got 0" },
            { Train.Replace("256", "-5"), 2, "--max-train-samples must be at least 1, got -5" },
            { $"{Train} --batch-size 0", 2, "--batch-size must be at least 1, got 0" },
            { $"{Train} --batch-size -1", 2, "--batch-size must be at least 1, got -1" },
            { $"{Train} --batch-size 99999999999", 2, "99999999999" },
            { $"{Train} --epochs 0", 2, "--epochs must be at least 1, got 0" },
            { $"{Train} --epochs -3", 2, "--epochs must be at least 1, got -3" },
            { $"{Train} --epochs 1e3", 2, "1e3|--epochs" },
            { $"{Train} --hidden-size 0", 2, "--hidden-size must be at least 1, got 0" },
            { $"{Train} --layers 0", 2, "--layers must be at least 1, got 0" },
            { $"{Train} --unroll 0", 2, "--unroll must be at least 1, got 0" },
            { $"{Train} --eval-batch-size 0", 2, "--eval-batch-size must be at least 1, got 0" },
            { $"{Train} --validation-size -1", 2, "--validation-size must be at least 0 (0 = none), got -1" },
            { $"{Train} --eval-every 0", 2, "--eval-every (the evaluation interval in effective epochs) must be a positive number, got 0" },
            { $"{Train} --eval-every abc", 2, "abc|--eval-every" },
            { $"{Train} --bn-recalibrate-batches -1", 2, "--bn-recalibrate-batches must be at least 0 (0 = a full pass), got -1" },
            { $"{Train} --seed abc", 2, "abc|--seed" },
            { $"{Train} -o entropy-sgd -L 0", 2, "-L (Langevin steps) must be at least 1, got 0" },
            { $"{Train} -o entropy-sgd -L 100000", 2, "-L must be at most 10,000 (Langevin steps per outer step), got 100000" },
            { $"{Train} -o entropy-sgd -L 2000000000", 2, "-L must be at most 10,000|got 2000000000" },

            // ---- hessian ----
            { $"{Hessian} --method trace --probes 0", 2, "--probes must be at least 1, got 0" },
            { $"{Hessian} --method trace --probes -4", 2, "--probes must be at least 1, got -4" },
            { $"{Hessian} --method slq --steps 0", 2, "--steps must be at least 1, got 0" },
            { $"{Hessian} --method lanczos --top 0", 2, "--top must be at least 1, got 0" },
            { $"{Hessian} --method lanczos --tolerance 0", 2, "--tolerance must be in (0, 1), got 0" },
            { $"{Hessian} --method lanczos --tolerance 1", 2, "--tolerance must be in (0, 1), got 1" },
            { $"{Hessian} --method lanczos --tolerance NaN", 2, "--tolerance NaN is not a finite number|in (0, 1)" },
            { $"{Hessian} --method lanczos --tolerance Infinity", 2, "--tolerance Infinity is not a finite number" },
            { $"{Hessian} --method exact --memory-limit 0", 2, "--memory-limit must be a positive number, got 0" },
            { $"{Hessian} --method exact --memory-limit NaN", 2, "--memory-limit NaN is not a finite number" },
            { $"{Hessian} --method exact --memory-limit -1", 2, "--memory-limit must be a positive number, got -1" },
            { $"{Hessian} --method exact --workers 0", 2, "--workers must be at least 1, got 0" },
            { $"{Hessian} --method exact --workers 100000", 2, $"--workers must be at most {MaxThreads}|got 100000" },
            { $"{Hessian} --method trace --samples 0", 2, "--samples must be at least 1, got 0" },
            { $"{Hessian} --method trace --samples -10", 2, "--samples must be at least 1, got -10" },
            { $"{Hessian} --method trace --batch-size 0", 2, "--batch-size must be at least 1, got 0" },
            { $"{Hessian} --method trace --threads 100000", 2, $"--threads must be {threadsAbove}" },
            { $"{Hessian} --method trace --threads -1", 2, "--threads must be 0 (libtorch's default) or positive, got -1" },
            { $"{Hessian} --method trace --hutch++ --probes 2", 2, "--hutch++ splits --probes in three" },
            { $"{Hessian} --method slq --steps 3000000000", 2, "3000000000|--steps" },

            { $"{Hessian} --method lanczos --top 100000", 2, "--top 100000|larger than the number of parameters measured" },
            { $"{Hessian} --method lanczos --top 20 --steps 5", 2, "--steps 5|below Top 20" },
            { $"{Hessian} --method exact --eigen inertia --bands 5e-3", 2, "--bands: 5e-3 is not one of the reported thresholds" },
            { $"{Hessian} --method exact --eigen inertia --bands x", 2, "--bands: 'x' is not a number" },
            { $"{Hessian} --method trace --top 3", 2, "--top applies to --method lanczos, not trace" },
            { $"{Hessian} --method lanczos --workers 2", 2, "--workers apply to --method exact, not lanczos" },
            { $"{Hessian} --method bogus", 2, "--method must be one of|bogus" },

            // ---- landscape ----
            { $"{Landscape} --slice 3d", 2, "--slice must be one of|3d" },
            { $"{Landscape} --slice 1d --range=a:b", 2, "--range must be FROM:TO|a:b" },
            { $"{Landscape} --slice 1d --range=-1:Infinity", 2, "--range must be FROM:TO|-1:Infinity" },
            { $"{Landscape} --slice interp --points 5", 2, "--slice interp needs --other" },
            { $"{Landscape} --slice 2d --points 501 --samples 0", 2, "--samples must be at least 1, got 0" },
            { $"{Landscape} --slice 2d --points 100000", 2, "--points 100000|100,000 x 100,000|10,000,000,000|at most 501" },
            { $"{Landscape} --slice 2d --points 502", 2, "--points 502|at most 501" },
            { $"{Landscape} --slice 1d --points 100001", 2, "--points 100001|100,000" },
            { $"{Landscape} --slice 1d --points 1", 2, "--points must be at least 2, got 1" },
            { $"{Landscape} --slice 1d --points -5", 2, "--points must be at least 2, got -5" },
            { $"{Landscape} --slice 1d --range=-1:NaN", 2, "--range" },
            { $"{Landscape} --slice 1d --range=1:-1", 2, "--range 1:-1|FROM must be below TO" },
            { $"{Landscape} --slice 1d --samples 0", 2, "--samples must be at least 1, got 0" },
            { $"{Landscape} --slice 1d --batch-size -2", 2, "--batch-size must be at least 1, got -2" },
            { $"{Landscape} --slice 1d --threads 100000", 2, $"--threads must be {threadsAbove}" },

            { $"{Train} --lr-schedule step:0:3", 2, "learning-rate schedule 'step:0:3'" },
            { $"{Train} -o entropy-sgd --scoping-schedule cubic", 2, "cubic|--scoping-schedule" },
            { $"{Train} -o sgd --nesterov", 2, "--nesterov needs --momentum greater than 0" },
            { $"{Train} -o sgd --langevin-lr 0.2", 2, "--langevin-lr does not apply to --optimizer sgd" },
            { $"{Train} -o parle --elastic-rho -1", 2, "--elastic-rho must be zero or positive, got -1" },
            { $"{Train} -o elastic-sgd --elastic-rho 20 --elastic-rho-max 10", 2, "--elastic-rho-max must be at least --elastic-rho (20), got 10" },
            { $"{Train} -o parle --gamma-max 0", 2, "--gamma-max must be a positive number, got 0" },
            { $"{Train} -o elastic-sgd --gamma-max 2", 2, "--gamma-max does not apply to --optimizer elastic-sgd" },

            // ---- evaluate ----
            { "evaluate {RUN} --threads 100000", 2, $"--threads must be {threadsAbove}" },
            { "evaluate {RUN} --threads -3", 2, "--threads must be 0 (libtorch's default) or positive, got -3" },
            { "evaluate {RUN} --batch-size 0", 2, "--batch-size must be at least 1, got 0" },

            // ---- bench ----
            { "bench optimizer -L 100000 --out {OUT}", 2, "-L must be at most 10,000" },
            { "bench optimizer --batch-size 0 --out {OUT}", 2, "--batch-size must be at least 1, got 0" },
            { "bench optimizer --rounds 0 --out {OUT}", 2, "--rounds must be at least 1, got 0" },
            { "bench optimizer --warmup -1 --out {OUT}", 2, "--warmup must be at least 0, got -1" },
            { "bench optimizer --threads 100000 --out {OUT}", 2, $"--threads must be {threadsAbove}" },
            { "bench hessian --samples 0 --out {OUT}", 2, "--samples must be at least 1, got 0" },
            { "bench hessian --top 0 --out {OUT}", 2, "--top must be at least 1, got 0" },
            { "bench hessian --tolerance NaN --out {OUT}", 2, "--tolerance NaN is not a finite number" },
            { "bench hessian --tolerance 1.5 --out {OUT}", 2, "--tolerance must be in (0, 1), got 1.5" },
            { "bench data --dataloader-batches -1 --out {OUT}", 2, "--dataloader-batches must be at least 0, got -1" },
            { "bench data --batch-size 0 --out {OUT}", 2, "--batch-size must be at least 1, got 0" },
            { "bench --threads 100000 --report {OUT}", 2, $"--threads must be {threadsAbove}" },
            { "bench --rounds 0 --report {OUT}", 2, "--rounds must be at least 1, got 0" },

            // ---- demo ----
            { "demo -L 100000 --out {OUT}", 2, "-L must be at most 10,000" },
            { "demo -L 0 --out {OUT}", 2, "-L must be at least 1, got 0" },
            { "demo --effective-epochs 0 --out {OUT}", 2, "--effective-epochs must be a positive number, got 0" },
            { "demo --effective-epochs NaN --out {OUT}", 2, "--effective-epochs NaN is not a finite number" },
            { "demo --effective-epochs Infinity --out {OUT}", 2, "--effective-epochs Infinity is not a finite number" },
            { "demo --threads 100000 --out {OUT}", 2, $"--threads must be {threadsAbove}" },

            // ---- reproduce ----
            { "reproduce table1 --seeds 0 --out {OUT}", 2, "--seeds must be at least 1, got 0" },
            { "reproduce table1 --threads 100000 --out {OUT}", 2, $"--threads must be {threadsAbove}" },
            { "reproduce table1 --threads -1 --out {OUT}", 2, "--threads must be 0 (libtorch's default) or positive, got -1" },
            { "reproduce sgld-baseline --sgld-lr NaN --out {OUT}", 2, "--sgld-lr NaN is not a finite number" },
            { "reproduce sgld-baseline --sgld-lr 0 --out {OUT}", 2, "--sgld-lr must be a positive number, got 0" },
            { "reproduce sgld-baseline --sgld-decay Infinity --out {OUT}", 2, "--sgld-decay Infinity is not a finite number" },
            { "reproduce local-entropy-toy --temperature 0 --out {OUT}", 2, "--temperature must be positive, got 0" },
            { "reproduce local-entropy-toy --temperature NaN --out {OUT}", 2, "--temperature NaN is not a finite number" },
            { "reproduce hessian-universality --threads 100000 --out {OUT}", 2, $"--threads must be {threadsAbove}" },

            // ---- memory estimates before allocating (sizes no machine holds; refused before any data is read) ----
            { "train --model ptb-lstm --hidden-size 1000000 --no-tensorboard --out {OUT}", 2, "ptb-lstm with --hidden-size 1000000 has at least|parameters|GiB available|lower --hidden-size" },
            { "train --model ptb-lstm -o entropy-sgd --hidden-size 1000000 --no-tensorboard --out {OUT}", 2, "training it with entropy-sgd|4 parameter-sized copies|lower --hidden-size" },
            { "train --model ptb-lstm -o entropy-sgd --layers 100000000 --no-tensorboard --out {OUT}", 2, "ptb-lstm with --layers 100000000|lower --layers" },
            { "train --model ptb-lstm --hidden-size 100000 --layers 1000 --no-tensorboard --out {OUT}", 2, "with --hidden-size 100000 and --layers 1000|lower --hidden-size or --layers" },
            { "train --model ptb-lstm --batch-size 2000000000 --unroll 1000000 --no-tensorboard --out {OUT}", 2, "a batch of 2000000000 x 1000000 tokens|lower --batch-size or --unroll" },
            { "train --model char-lstm --data text --corpus /nonexistent/corpus.txt -o entropy-adam --hidden-size 2000000 --no-tensorboard --out {OUT}", 2, "char-lstm with --hidden-size 2000000|training it with entropy-adam|lower --hidden-size" },
            { "train --model small-char-lstm --data text --corpus /nonexistent/corpus.txt --layers 2000000000 --no-tensorboard --out {OUT}", 2, "small-char-lstm with --layers 2000000000 has at least|lower --layers" },
        };
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OutOfRangeNumbersAreRefusedBeforeAnythingIsWritten(string commandLine, int exitCode, string words)
    {
        using var dir = new TempDir("widevalley-bad-option");
        var output = dir.File("out");
        var args = commandLine.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(a => a.Replace("{RUN}", fixture.Run, StringComparison.Ordinal).Replace("{OUT}", output, StringComparison.Ordinal))
            .ToArray();
        var before = fixture.Snapshot();

        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CliApp.Run(args, stdout, stderr);

        var err = stderr.ToString();
        Assert.True(code == exitCode, $"exit {code}, expected {exitCode}; stderr: {err}; stdout: {stdout}");
        foreach (var word in words.Split('|'))
            Assert.True(err.Contains(word, StringComparison.Ordinal), $"the message should hold '{word}': {err}");
        Assert.False(Directory.Exists(output) || File.Exists(output), $"{output} was written");
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
        Assert.Equal(before, fixture.Snapshot());
    }

    [Fact]
    public void TheTableHasAtLeastEightyCases() => Assert.True(Cases().Count >= 80, $"{Cases().Count} cases");

    [Fact]
    public void TheThreadLimitFollowsTheMachine()
    {
        Assert.Equal(4 * Environment.ProcessorCount, OptionRanges.MaxThreads);
        Assert.Equal(OptionRanges.MaxThreads, RunSetup.MaxThreads);
    }

    [Fact]
    public void LibraryUsersGetTheSameChecksFromRunSetupValidate()
    {
        // Defects 11, 12 and 14 for callers that build a RunConfig themselves.
        var config = new RunConfig();
        Assert.Contains("--clip-grad-norm", Assert.ThrowsAny<ArgumentException>(() => RunSetup.Validate(config with { ClipGradNorm = double.NaN })).Message);
        Assert.Contains("--clip-grad-norm", Assert.ThrowsAny<ArgumentException>(() => RunSetup.Validate(config with { ClipGradNorm = double.PositiveInfinity })).Message);
        Assert.Contains("--effective-epochs", Assert.ThrowsAny<ArgumentException>(() => RunSetup.Validate(config with { EffectiveEpochBudget = double.PositiveInfinity })).Message);
        var threads = Assert.ThrowsAny<ArgumentException>(() => RunSetup.Validate(config with { Threads = 100_000 })).Message;
        Assert.Contains("--threads must be at most", threads);
        Assert.Contains("100000", threads);
        var batch = Assert.ThrowsAny<ArgumentException>(() => RunSetup.Validate(config with { MaxTrainSamples = 1, BatchSize = 128 })).Message;
        Assert.Contains("--batch-size 128", batch);
        Assert.Contains("--max-train-samples 1", batch);
        var loaded = Assert.ThrowsAny<ArgumentException>(() => RunSetup.ValidateBatchAgainstTrainingSet(config with { BatchSize = 500 }, 300)).Message;
        Assert.Contains("--batch-size 500", loaded);
        Assert.Contains("300 samples", loaded);
        RunSetup.ValidateBatchAgainstTrainingSet(config with { BatchSize = 300 }, 300);
    }

    [Fact]
    public void TheDemoTellsHowToContinueARunWithTrainResume()
    {
        // The trainer's advice names --resume, an option of train that demo does not have.
        var stopped = DemoCommand.ResumeAdvice("stopped on request after epoch 2; resume with --resume", "/runs/demo/entropy-sgd");
        Assert.Contains("widevalley train --resume --out /runs/demo/entropy-sgd", stopped);
        Assert.DoesNotContain("resume with --resume", stopped);
        var diverged = DemoCommand.ResumeAdvice("training loss is NaN at epoch 3; resume with --resume (checkpoint: /runs/demo/adam/checkpoint.bin)", "/runs/demo/adam");
        Assert.Contains("widevalley train --resume --out /runs/demo/adam", diverged);
        Assert.Contains("checkpoint: /runs/demo/adam/checkpoint.bin", diverged);
    }
}
