using System.Text.Json.Nodes;
using WideValley.Cli;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Cli;

/// <summary>The widevalley command, run in-process.</summary>
public class CliTests
{
    [Theory]
    [InlineData(true, false, false, true)]
    [InlineData(false, false, false, false)]
    [InlineData(true, true, false, false)]
    [InlineData(true, false, true, false)]
    public void ProgressBarsOnlyOnAPersonsTerminalNotUnderMpirun(bool console, bool redirected, bool mpi, bool expected) =>
        Assert.Equal(expected, CliApp.IsInteractive(console, redirected, mpi));

    static (int Code, string Out, string Err) Run(params string[] args) => InProcessCli.Run(args);

    [Theory]
    [InlineData(new[] { "train", "--bogus" }, "--bogus")]
    [InlineData(new[] { "train", "--model", "resnet" }, "resnet")]
    [InlineData(new[] { "train", "--epochs", "many" }, "many")]
    [InlineData(new[] { "train", "--lr", "-1" }, "--lr must be a positive number, got -1")]
    [InlineData(new[] { "train", "--lr-schedule", "step:0:3" }, "learning-rate schedule 'step:0:3'")]
    [InlineData(new[] { "train", "--optimizer", "sgd", "--nesterov" }, "--nesterov needs --momentum greater than 0")]
    [InlineData(new[] { "train", "--optimizer", "adam", "--beta1", "1" }, "--beta1 must be in [0, 1), got 1")]
    [InlineData(new[] { "train", "--optimizer", "sgd", "--langevin-lr", "0.2" }, "--langevin-lr does not apply to --optimizer sgd")]
    [InlineData(new[] { "train", "--model", "char-lstm", "--data", "text" }, "--corpus")]
    [InlineData(new[] { "train", "--model", "char-lstm", "--data", "fashion-mnist" }, "language model")]
    [InlineData(new[] { "train", "--model", "lenet", "--data", "ptb" }, "classifies images")]
    [InlineData(new[] { "train", "--dropout", "1.5" }, "--dropout must be in [0, 1)")]
    [InlineData(new[] { "train", "--device", "tpu" }, "unknown device")]
    [InlineData(new[] { "train", "--resume" }, "--resume needs --out")]
    public void InvalidOptionsExitWithCode2AndSayWhy(string[] args, string expected)
    {
        var (code, _, err) = Run([.. args, "--max-train-samples", "256", "--no-tensorboard"]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void MissingDatasetIsAFailureThatSaysWhatToDo()
    {
        using var dir = new TempDir();
        var (code, _, err) = Run("train", "--data", "mnist", "--data-dir", dir.File("nowhere"), "--out", dir.File("run"));
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains(dir.File("nowhere"), err);
        Assert.Contains("widevalley data download", err);
        Assert.False(Directory.Exists(dir.File("run")));
    }

    [Fact]
    public void TrainsResumesAndRefusesToChangeSettingsOnResume()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        string[] common = ["--model", "small-mnistfc", "--optimizer", "adam", "--max-train-samples", "2000", "--batch-size", "100", "--threads", "2", "--out", run];
        var (code, output, err) = Run(["train", .. common, "--epochs", "1"]);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("epoch 1/1", output);
        Assert.Contains("finished: test error", output);
        Assert.Single(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")));

        // The same folder without --resume would overwrite a run: refused.
        var again = Run(["train", .. common, "--epochs", "1"]);
        Assert.Equal(ExitCodes.Usage, again.Code);
        Assert.Contains("already holds a run", again.Err);

        // Resuming with another learning rate would be a different experiment: refused, and nothing is touched.
        var before = File.ReadAllBytes(Path.Combine(run, Trainer.CheckpointFileName));
        var changed = Run("train", "--out", run, "--resume", "--epochs", "2", "--lr", "0.5");
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--lr 0.5", changed.Err);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(run, Trainer.CheckpointFileName)));

        // Extending the run is allowed and keeps the stored settings.
        var resumed = Run("train", "--out", run, "--resume", "--epochs", "2");
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        Assert.Contains("(resuming)", resumed.Out);
        Assert.Contains("epoch 2/2", resumed.Out);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        Assert.Equal(new[] { 1, 2 }, lines.Select(l => (int)JsonNode.Parse(l)!["epoch"]!));
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("finished", (string?)summary["status"]);
        Assert.Equal("adam", (string?)summary["config"]!["optimizer"]);
        Assert.Equal(2, (int)summary["config"]!["epochs"]!);

        // evaluate rebuilds the network and data from the checkpoint: the test split gives the logged numbers again.
        var evaluated = Run("evaluate", run, "--splits", "train,test", "--json");
        Assert.True(evaluated.Code == ExitCodes.Ok, evaluated.Err);
        var e = JsonNode.Parse(evaluated.Out)!;
        var logged = JsonNode.Parse(lines[^1])!;
        Assert.Equal((double)logged["test_error"]!, (double)e["test_error"]!, 9);
        Assert.Equal((double)logged["test_loss"]!, (double)e["test_loss"]!, 9);
        Assert.InRange((double)e["train_error"]!, 0, 100);
        Assert.Equal(2, (int)e["epoch"]!);
        var noCheckpoint = Run("evaluate", dir.File("nothing-here"));
        Assert.Equal(ExitCodes.Usage, noCheckpoint.Code);
        Assert.Contains("holds no checkpoint", noCheckpoint.Err);
        var badSplit = Run("evaluate", run, "--splits", "holdout");
        Assert.Equal(ExitCodes.Usage, badSplit.Code);
        Assert.Contains("unknown split 'holdout'", badSplit.Err);
    }

    [Fact]
    public void TrainsACharacterLanguageModelOnAnyTextFile()
    {
        using var dir = new TempDir();
        var corpus = dir.File("corpus.txt");
        File.WriteAllText(corpus, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog. ", 300)));
        var (code, output, err) = Run("train", "--model", "small-char-lstm", "--data", "text", "--corpus", corpus,
            "--optimizer", "adam", "--lr", "0.01", "--batch-size", "16", "--epochs", "2", "--threads", "2", "--out", dir.File("run"), "--no-tensorboard");
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("test perplexity", output);
        var last = JsonNode.Parse(File.ReadAllLines(dir.File("run/metrics.jsonl"))[^1])!;
        var vocabulary = "the quick brown fox jumps over the lazy dog.".Distinct().Count();
        // A repeated sentence is very predictable: perplexity must fall far below the uniform guess.
        Assert.True((double)last["test_perplexity"]! < vocabulary / 2.0, $"perplexity {last["test_perplexity"]}");
    }

    [Fact]
    public void ModelsCommandListsThePaperCounts()
    {
        var (code, output, _) = Run("models");
        Assert.Equal(ExitCodes.Ok, code);
        Assert.Contains("47,658", output);
        Assert.Contains("50,890", output);
        Assert.Contains("32,640", output);
        Assert.Contains("fb-mnist-cnn", output);
        Assert.Contains("3,274,634", output);
        Assert.Contains("ptb-small-lstm", output);
        Assert.Contains("4,653,200", output);
    }

    [Theory]
    [InlineData(new[] { "-L", "0" }, "-L (Langevin steps) must be at least 1, got 0")]
    [InlineData(new[] { "--langevin-lr", "-1" }, "--langevin-lr must be a positive number, got -1")]
    [InlineData(new[] { "--momentum", "1.5" }, "--momentum must be in [0, 1), got 1.5")]
    [InlineData(new[] { "--scoping-schedule", "const", "--gamma", "0" }, "scoping schedule 'const:0'")]
    [InlineData(new[] { "--sgld-decay", "0.3" }, "--sgld-decay does not apply to --optimizer entropy-sgd; its options are --lr, --momentum")]
    [InlineData(new[] { "--scoping-schedule", "cubic" }, "cubic")]
    [InlineData(new[] { "--noise-scaling", "double" }, "Argument 'double' not recognized")]
    [InlineData(new[] { "--alpha", "1.5" }, "alpha")]
    [InlineData(new[] { "--langevin-nesterov" }, "--langevin-momentum")]
    [InlineData(new[] { "--diagnostics-every", "-1" }, "--diagnostics-every")]
    public void InvalidLocalEntropyOptionsExitWithCode2(string[] args, string expected)
    {
        using var dir = new TempDir();
        var (code, _, err) = Run(["train", "--model", "small-mnistfc", "--optimizer", "entropy-sgd", .. args,
            "--max-train-samples", "256", "--no-tensorboard", "--out", dir.File("run")]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
        Assert.False(Directory.Exists(dir.File("run")));
    }

    [Fact]
    public void EntropySgdFromTheCommandLineLogsDiagnosticsAndEffectiveEpochs()
    {
        using var dir = new TempDir();
        var run = dir.File("run");
        var (code, output, err) = Run("train", "--model", "small-mnistfc", "--optimizer", "entropy-sgd", "-L", "3",
            "--lr", "0.5", "--momentum", "0.9", "--nesterov", "--langevin-momentum", "0.9", "--langevin-nesterov",
            "--gamma", "0.03", "--scoping", "0.01", "--diagnostics-every", "2", "--max-train-samples", "1000",
            "--batch-size", "100", "--epochs", "2", "--threads", "2", "--out", run);
        Assert.True(code == ExitCodes.Ok, err);
        Assert.Contains("finished: test error", output);
        var lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal(2, lines.Length);
        // 10 outer steps per epoch, each 3 Langevin evaluations, plus one diagnostic evaluation every 2nd step.
        Assert.Equal(2 * (10 * 3 + 5), (long)lines[1]["grad_evals"]!);
        Assert.Equal(2 * (10 * 3 + 5) * 100 / 1000.0, (double)lines[1]["effective_epochs"]!, 9);
        foreach (var key in new[] { "gamma", "local_entropy_distance", "local_entropy_grad_norm", "sgd_grad_norm", "grad_cosine" })
            Assert.True(double.IsFinite((double)lines[1][key]!), key);
        // gamma grows as 0.03 (1.01)^t with t = outer steps made: 20 after two epochs.
        Assert.Equal(0.03 * Math.Pow(1.01, 20), (double)lines[1]["gamma"]!, 9);
        var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "summary.json")))!;
        Assert.Equal("entropy-sgd", (string?)summary["config"]!["optimizer"]);
        Assert.Equal(3, (int)summary["config"]!["optimizer_options"]!["local_entropy"]!["l"]!);
        Assert.Equal("exp:0.03:0.01", (string?)summary["config"]!["optimizer_options"]!["local_entropy"]!["scope"]);

        // Resuming with another Langevin setting is refused, naming the flag and both values.
        var changed = Run("train", "--out", run, "--resume", "--epochs", "3", "--langevin-lr", "0.2", "--noise-scaling", "reference", "-L", "3");
        Assert.Equal(ExitCodes.Usage, changed.Code);
        Assert.Contains("--langevin-lr 0.2 (the run has 0.1)", changed.Err);
        Assert.Contains("--noise-scaling reference (the run has paper)", changed.Err);
        Assert.DoesNotContain("-L 3", changed.Err);

        // An effective-epoch budget stops the run early, mid-epoch, with the epoch still evaluated.
        var budget = Run("train", "--out", run, "--resume", "--epochs", "4", "--effective-epochs", "8");
        Assert.True(budget.Code == ExitCodes.Ok, budget.Err);
        var last = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[^1])!;
        Assert.Equal(3, (int)last["epoch"]!);
        Assert.InRange((double)last["effective_epochs"]!, 8.0, 8.4);
    }

    [Fact]
    public void BenchOptimizerPrintsOneJsonObjectWithTheIssueFields()
    {
        using var dir = new TempDir();
        var file = dir.File("bench.json");
        var (code, output, err) = Run("bench", "optimizer", "--model", "small-mnistfc", "-L", "4", "--rounds", "3",
            "--warmup", "1", "--threads", "2", "--json", "--out", file);
        Assert.True(code == ExitCodes.Ok, err);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        var json = JsonNode.Parse(lines[0])!;
        Assert.Equal("small-mnistfc", (string?)json["model"]);
        Assert.Equal(4, (int)json["L"]!);
        var sgd = (double)json["sgd_step_ms"]!;
        var esgd = (double)json["entropy_sgd_step_ms"]!;
        Assert.True(sgd > 0 && esgd > 0);
        Assert.Equal(esgd / (4 * sgd), (double)json["ratio"]!, 2);
        // x0, mu, the Langevin momentum and the outer momentum: four parameter-sized buffers, no more.
        Assert.Equal(4.0, (double)json["entropy_sgd_state_buffers"]!, 9);
        Assert.Equal(1.0, (double)json["sgd_state_buffers"]!, 9);
        Assert.Equal(lines[0], File.ReadAllText(file).Trim());
    }

    [Fact]
    public void BenchHessianPrintsCostsAndLanczosProductCount()
    {
        var (code, output, err) = Run("bench", "hessian", "--model", "small-mnistfc", "--samples", "200", "--batch-size", "100",
            "--rounds", "3", "--warmup", "1", "--top", "3", "--threads", "2", "--json");
        Assert.True(code == ExitCodes.Ok, err);
        var json = JsonNode.Parse(output.Trim())!;
        var grad = (double)json["grad_ms"]!;
        var hvp = (double)json["hvp_ms"]!;
        Assert.True(grad > 0 && hvp > 0);
        // Each of the three is rounded to 3 decimals on its own, so compare with a tolerance, not digit by digit.
        Assert.Equal(hvp / grad, (double)json["hvp_over_grad"]!, tolerance: 0.005);
        Assert.Equal(50_890, (long)json["parameters"]!);
        Assert.True((bool)json["lanczos_converged"]!);
        Assert.InRange((long)json["lanczos_hvps"]!, 3, 1000);
        Assert.Equal("error-bound", (string)json["lanczos_rule"]!);
        Assert.InRange((long)json["lanczos_hvps_residual_rule"]!, 3, 1000);
        Assert.True((double)json["lanczos_max_error_bound"]! >= 0);
        Assert.True((double)json["lambda_max"]! > 0);
        var bad = Run("bench", "hessian", "--top", "0");
        Assert.Equal(ExitCodes.Usage, bad.Code);
        Assert.Contains("--top must be at least 1", bad.Err);
    }

    [Theory]
    [InlineData(new[] { "--model", "char-lstm" }, "image classifier")]
    [InlineData(new[] { "-L", "0" }, "-L must be at least 1")]
    [InlineData(new[] { "--rounds", "1" }, "--rounds")]
    public void BenchRejectsBadOptions(string[] args, string expected)
    {
        var (code, _, err) = Run(["bench", "optimizer", .. args]);
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains(expected, err);
    }

    [Fact]
    public void EvaluatesAFormatOneRunAndNamesWhatACustomModelRunNeeds()
    {
        // The fixture's logged losses are on the full test set and training set.
        TestMachine.RequireFullFashionMnist();
        using var dir = new TempDir();
        var run = dir.File("v1");
        Directory.CreateDirectory(run);
        var fixture = WideValley.Tests.Training.CheckpointFormatTests.FixtureFolder("checkpoint-v1");
        foreach (var file in new[] { Trainer.CheckpointFileName, "metrics.jsonl", Trainer.SummaryFileName })
            File.Copy(Path.Combine(fixture, file), Path.Combine(run, file));
        var evaluated = Run("evaluate", run, "--splits", "test", "--data-dir", TestMachine.DebianFashionMnistFolder, "--json");
        Assert.True(evaluated.Code == ExitCodes.Ok, evaluated.Err);
        var e = JsonNode.Parse(evaluated.Out)!;
        var logged = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[0])!;
        Assert.Equal((double)logged["test_loss"]!, (double)e["test_loss"]!, 1e-6);
        Assert.Equal(("entropy-sgd", 1), ((string?)e["optimizer"], (int)e["epoch"]!));

        // Resume it to the second epoch (its data lies elsewhere here than where it was trained: --data-dir may change).
        var resumed = Run("train", "--out", run, "--resume", "--epochs", "2", "--data-dir", TestMachine.DebianFashionMnistFolder);
        Assert.True(resumed.Code == ExitCodes.Ok, resumed.Err);
        var second = JsonNode.Parse(File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))[1])!;
        var expected = JsonNode.Parse(File.ReadAllText(Path.Combine(fixture, "expected-epoch-2.jsonl")))!;
        Assert.Equal((long)expected["grad_evals"]!, (long)second["grad_evals"]!);
        Assert.Equal((double)expected["train_loss"]!, (double)second["train_loss"]!, 1e-6);
        Assert.Equal(Checkpoint.FormatVersion, Checkpoint.ReadMeta(Path.Combine(run, Trainer.CheckpointFileName)).FormatVersion);

        // A run the library's Trainer wrote for the user's own network: evaluate says what it holds and what it needs.
        var custom = dir.File("custom");
        var model = WideValley.Tests.Support.Synthetic.Mlp();
        using (var task = new ClassificationTask(model, WideValley.Tests.Support.Synthetic.Blobs(train: 64), 32, seed: 1))
        using (var optimizer = WideValley.Optim.OptimizerFactory.Create("adam", model.parameters()))
            new Trainer(task, optimizer, new TrainerOptions { Epochs = 1, OutputDirectory = custom, TensorBoard = false, ModelName = "MyNet" }).Run();
        var refused = Run("evaluate", custom);
        Assert.Equal(ExitCodes.Failure, refused.Code);
        Assert.Contains("this run holds a custom model 'MyNet'", refused.Err);
        Assert.Contains("--model-factory ASSEMBLY:TYPE", refused.Err);
    }
}
