using System.Diagnostics;
using System.Text.Json.Nodes;
using WideValley.Distributed;
using WideValley.Models;
using WideValley.Tests.Distributed;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

/// <summary>
/// <c>widevalley train --distributed</c> for real: the built command under <c>mpirun -np 2</c> on loopback against
/// the same command in one process. Data-parallel training with 2 ranks of batch b must take the steps one process
/// with batch 2b takes (the same stream, each rank half of every minibatch, gradients averaged), so weights and metrics
/// agree to float32 summation order; a resumed 2-rank run must end bit for bit where an uninterrupted one ends; a rank
/// killed mid-run must end the job within a bound and leave a loadable checkpoint. Small runs: the small mnistfc on
/// 512 Fashion-MNIST images, one libtorch thread per rank.
/// </summary>
public class DistributedTrainingTests(ITestOutputHelper output)
{
    static readonly TimeSpan Timeout = TimeSpan.FromMinutes(4);

    /// <summary>Max |w1 - w2| allowed between the 2-rank and the one-process run: float32 sums in another order.</summary>
    const double WeightTolerance = 1e-5;

    static string[] Common(int epochs, bool dropout = false) =>
    [
        "train", "--model", "small-mnistfc", "--data", "fashion-mnist", "--data-dir", TestMachine.FashionMnistFolder,
        "--max-train-samples", "512", "--epochs", epochs.ToString(), "--threads", "1", "--no-tensorboard",
        .. dropout ? Array.Empty<string>() : ["--dropout", "0", "--input-dropout", "0"],
    ];

    MpiJob.Outcome OneProcess(IEnumerable<string> arguments)
    {
        var outcome = MpiJob.Run(MpiJob.Widevalley(), arguments, Timeout, output);
        Assert.True(outcome.ExitCode == 0, $"widevalley exited with {outcome.ExitCode}:\n{outcome.Output}\n{outcome.Errors}");
        return outcome;
    }

    MpiJob.Outcome TwoRanks(IEnumerable<string> arguments, bool mustSucceed = true, Action<Process>? started = null)
    {
        var outcome = MpiJob.Run(MpiJob.Mpirun(), [.. MpiJob.MpirunArguments(2), MpiJob.Widevalley(), .. arguments], Timeout, output, started);
        if (mustSucceed) Assert.True(outcome.ExitCode == 0, $"mpirun exited with {outcome.ExitCode}:\n{outcome.Output}\n{outcome.Errors}");
        return outcome;
    }

    /// <summary>The final weights of the run in <paramref name="folder"/>, as one vector (image classifiers and language models alike).</summary>
    static double[] Weights(string folder)
    {
        var checkpoint = Path.Combine(folder, Trainer.CheckpointFileName);
        var config = Checkpoint.ReadMeta(checkpoint).RequireRunConfig(checkpoint);
        using var prepared = RunSetup.Prepare(config with { Threads = 1, TensorBoard = false, Distributed = null }, outputDirectory: null);
        Checkpoint.LoadWeights(checkpoint, prepared.Task.Model);
        using var scope = NewDisposeScope();
        return cat(prepared.Task.Model.parameters().Select(p => p.detach().flatten().to(ScalarType.Float64)).ToList()).data<double>().ToArray();
    }

    static List<JsonObject> Metrics(string folder) =>
        File.ReadAllLines(Path.Combine(folder, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    static double MaxDifference(double[] a, double[] b)
    {
        Assert.Equal(a.Length, b.Length);
        return a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
    }

    void AssertSameTraining(string single, string distributed, string what)
    {
        var (a, b) = (Weights(single), Weights(distributed));
        var difference = MaxDifference(a, b);
        var scale = a.Max(Math.Abs);
        output.WriteLine($"{what}: max |w_2ranks - w_1process| = {difference:E3} over {a.Length} weights (max |w| {scale:0.###})");
        Assert.True(difference <= WeightTolerance, $"{what}: the 2-rank weights differ from the one-process weights by up to {difference:E3} (tolerance {WeightTolerance:E0})");
        // A run that took other steps (a shard's gradient alone, or another data order) ends far away.
        Assert.True(difference < 1e-3 * scale, $"{what}: difference {difference} not small against the weights' scale {scale}");
        var (ma, mb) = (Metrics(single), Metrics(distributed));
        Assert.Equal(ma.Count, mb.Count);
        for (var i = 0; i < ma.Count; i++)
        {
            foreach (var key in new[] { "grad_evals", "outer_steps", "effective_epochs", "train_error", "test_error" })
                Assert.True(ma[i][key]!.ToJsonString() == mb[i][key]!.ToJsonString(), $"{what}, epoch {i + 1}: {key} {mb[i][key]} instead of {ma[i][key]}");
            foreach (var key in new[] { "train_loss", "test_loss" })
            {
                var (x, y) = ((double)ma[i][key]!, (double)mb[i][key]!);
                output.WriteLine($"{what}, epoch {i + 1}: {key} 1 process {x:R}, 2 ranks {y:R}, |diff| {Math.Abs(x - y):E2}");
                Assert.True(Math.Abs(x - y) <= 1e-5 * Math.Abs(x), $"{what}, epoch {i + 1}: {key} {y} instead of {x}");
            }
        }
    }

    /// <summary>Two runs that must have taken the same steps: the same weights and the same logged metrics, bit for bit.</summary>
    static void AssertBitIdenticalRuns(string expected, string actual)
    {
        Assert.Equal(Weights(expected), Weights(actual));
        var (a, b) = (Metrics(expected), Metrics(actual));
        Assert.Equal(a.Count, b.Count);
        for (var i = 0; i < a.Count; i++)
            foreach (var key in new[] { "train_loss", "train_error", "test_loss", "test_error", "grad_evals" })
                Assert.Equal(a[i][key]!.ToJsonString(), b[i][key]!.ToJsonString());
    }

    [Fact]
    public void DataParallelSgdOnTwoRanksOfBatch32TakesTheStepsOfOneProcessWithBatch64()
    {
        using var dir = new TempDir("widevalley-dtrain-sgd");
        var (single, distributed) = (dir.File("one"), dir.File("two"));
        OneProcess([.. Common(2), "--batch-size", "64", "--out", single]);
        var job = TwoRanks([.. Common(2), "--batch-size", "32", "--distributed", "data-parallel", "--out", distributed]);
        AssertSameTraining(single, distributed, "data-parallel SGD");
        Assert.Contains("--distributed data-parallel on 2 ranks", job.Output);
        // Rank 0's output reaches mpirun through a pseudo-terminal; live progress bars would redraw there (cursor up).
        Assert.DoesNotContain("\u001b[2A", job.Output);
        var meta = Checkpoint.ReadMeta(Path.Combine(distributed, Trainer.CheckpointFileName));
        Assert.Equal(("data-parallel", 2, Checkpoint.DistributedFormatVersion), (meta.Distributed, meta.WorldSize, meta.FormatVersion));
        Assert.Single(Checkpoint.ReadOtherRanks(Path.Combine(distributed, Trainer.CheckpointFileName)));
    }

    [Fact]
    public void DataParallelEntropySgdOnTwoRanksMatchesOneProcessWithTheDoubleBatch()
    {
        using var dir = new TempDir("widevalley-dtrain-entropy");
        var (single, distributed) = (dir.File("one"), dir.File("two"));
        string[] entropy = ["--optimizer", "entropy-sgd", "-L", "4"];
        OneProcess([.. Common(2), .. entropy, "--batch-size", "64", "--out", single]);
        TwoRanks([.. Common(2), .. entropy, "--batch-size", "32", "--distributed", "data-parallel", "--out", distributed]);
        AssertSameTraining(single, distributed, "data-parallel Entropy-SGD");
    }

    [Fact]
    public void DataParallelCharLstmOnTwoRanksMatchesOneProcessWithTheDoubleBatch()
    {
        // Each rank trains its half of the BPTT rows and carries their hidden state: together they take the steps of one
        // process whose batch has all the rows (the text is cut into the same 16 rows either way).
        using var dir = new TempDir("widevalley-dtrain-lstm");
        var corpus = dir.File("corpus.txt");
        File.WriteAllText(corpus, string.Concat(Enumerable.Range(0, 400).Select(i => $"line {i % 37}: the {(i % 3 == 0 ? "quick" : "lazy")} fox {i * 7 % 11}. ")));
        var (single, distributed) = (dir.File("one"), dir.File("two"));
        string[] lstm = ["train", "--model", "small-char-lstm", "--data", "text", "--corpus", corpus, "--lr", "0.5",
            "--epochs", "2", "--threads", "1", "--no-tensorboard", "--dropout", "0"];
        OneProcess([.. lstm, "--optimizer", "sgd", "--batch-size", "16", "--out", single]);
        TwoRanks([.. lstm, "--optimizer", "sgd", "--batch-size", "8", "--distributed", "data-parallel", "--out", distributed]);
        AssertSameTraining(single, distributed, "data-parallel char-LSTM");
        // Replicas of a language model would read one unshuffled stream in the same order: refused, saying why.
        var refused = MpiJob.Run(MpiJob.Widevalley(), [.. lstm, "--batch-size", "8", "--distributed", "parle", "--out", dir.File("parle")], Timeout, output);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("--distributed data-parallel, which shares its rows out", refused.Errors + refused.Output);
    }

    [Fact]
    public void WorldSizeOneIsThePlainRunBitForBit()
    {
        using var dir = new TempDir("widevalley-dtrain-one");
        var (plain, distributed) = (dir.File("plain"), dir.File("distributed"));
        OneProcess([.. Common(1, dropout: true), "--batch-size", "32", "--out", plain]);
        OneProcess([.. Common(1, dropout: true), "--batch-size", "32", "--distributed", "data-parallel", "--out", distributed]);
        Assert.Equal(Weights(plain), Weights(distributed));
        var (a, b) = (Metrics(plain)[0], Metrics(distributed)[0]);
        foreach (var key in new[] { "train_loss", "train_error", "test_loss", "test_error", "grad_evals" })
            Assert.Equal(a[key]!.ToJsonString(), b[key]!.ToJsonString());
    }

    [Fact]
    public void ATwoRankRunStoppedAndResumedEndsBitIdenticalToAnUninterruptedOne()
    {
        using var dir = new TempDir("widevalley-dtrain-resume");
        var (whole, resumed) = (dir.File("whole"), dir.File("resumed"));
        // Dropout on: each rank draws its own masks, so the resumed run must get rank 1's generator back too.
        TwoRanks([.. Common(2, dropout: true), "--batch-size", "32", "--distributed", "data-parallel", "--out", whole]);
        // Stopped after epoch 1, then resumed by a new job for epoch 2.
        TwoRanks([.. Common(1, dropout: true), "--batch-size", "32", "--distributed", "data-parallel", "--out", resumed]);
        var job = TwoRanks(["train", "--resume", "--out", resumed, "--epochs", "2"]);
        AssertBitIdenticalRuns(whole, resumed);
        Assert.DoesNotContain("error", job.Errors, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void ATwoRankRunStoppedBySigtermMidEpochAndResumedEndsBitIdentical()
    {
        using var dir = new TempDir("widevalley-dtrain-sigterm");
        var (whole, stopped) = (dir.File("whole"), dir.File("stopped"));
        string[] run = [.. Common(12, dropout: true), "--batch-size", "32", "--distributed", "data-parallel"];
        TwoRanks([.. run, "--out", whole]);
        var job = TwoRanks([.. run, "--out", stopped], mustSucceed: false, started: mpirun =>
        {
            // As soon as epoch 1 is logged, SIGTERM both ranks: each asks to stop, and the ranks agree on one step.
            var waited = Stopwatch.StartNew();
            var metrics = Path.Combine(stopped, "metrics.jsonl");
            while (!File.Exists(metrics) && waited.Elapsed < TimeSpan.FromMinutes(2) && !mpirun.HasExited) Thread.Sleep(50);
            var ranks = MpiJob.ChildrenOf(mpirun.Id).ToList();
            Assert.Equal(2, ranks.Count);
            using var kill = Process.Start("kill", ["-TERM", .. ranks.Select(r => r.ToString())])!;
            kill.WaitForExit();
        });
        Assert.Equal(130, job.ExitCode);
        var meta = Checkpoint.ReadMeta(Path.Combine(stopped, Trainer.CheckpointFileName));
        output.WriteLine($"stopped at {Checkpoint.DescribePosition(meta)} ({meta.Reason})");
        Assert.Equal("interrupted", meta.Reason);
        Assert.True(meta.CompletedEpochs < 12);
        TwoRanks(["train", "--resume", "--out", stopped]);
        AssertBitIdenticalRuns(whole, stopped);
    }

    [Fact]
    public void AParleRunOfTwoRanksResumesBitIdenticallyAndItsCheckpointHoldsTheReplicasMeanThatEvaluateMeasures()
    {
        using var dir = new TempDir("widevalley-dtrain-parle");
        var (whole, resumed) = (dir.File("whole"), dir.File("resumed"));
        // Dropout on: each replica draws its own masks, so rank 0's generator must come back from its own stored state.
        string[] parle = ["--batch-size", "32", "--distributed", "parle", "-L", "4"];
        TwoRanks([.. Common(2, dropout: true), .. parle, "--out", whole]);
        TwoRanks([.. Common(1, dropout: true), .. parle, "--out", resumed]);
        var checkpoint = Path.Combine(resumed, Trainer.CheckpointFileName);
        var meta = Checkpoint.ReadMeta(checkpoint);
        Assert.Equal(("replicas", 2, true), (meta.Distributed, meta.WorldSize, meta.WeightsAreReplicaMean));
        Assert.Equal(2, Checkpoint.ReadOtherRanks(checkpoint).Count); // every replica, rank 0's included
        TwoRanks(["train", "--resume", "--out", resumed, "--epochs", "2"]);
        AssertBitIdenticalRuns(whole, resumed);
        var last = Metrics(whole)[^1];
        // The checkpoint's weights are the model the run reported: evaluate measures the replicas' mean, bit for bit.
        var evaluated = OneProcess(["evaluate", whole, "--splits", "test", "--threads", "1", "--json"]);
        var result = JsonNode.Parse(evaluated.Output)!.AsObject();
        Assert.Equal("the mean of 2 replicas", (string?)result["weights"]);
        Assert.Equal(last["test_error"]!.ToJsonString(), result["test_error"]!.ToJsonString());
        Assert.Equal((double)last["test_loss"]!, (double)result["test_loss"]!, 1e-6);
    }

    [Fact]
    public void ADataParallelCheckpointResumesOnOtherRankCountsWithANoticeButNotInAnotherMode()
    {
        using var dir = new TempDir("widevalley-dtrain-mode");
        var folder = dir.File("run");
        TwoRanks([.. Common(1), "--batch-size", "32", "--distributed", "data-parallel", "--out", folder]);
        // Another mode: refused before anything runs (one process, no mpirun needed for the refusal).
        var otherMode = MpiJob.Run(MpiJob.Widevalley(), ["train", "--resume", "--out", folder, "--epochs", "2", "--distributed", "parle"], Timeout, output);
        Assert.NotEqual(0, otherMode.ExitCode);
        Assert.Contains("--distributed", otherMode.Errors + otherMode.Output);
        Assert.Contains("the run has \"data-parallel\"", otherMode.Errors + otherMode.Output);
        // One process continues the data-parallel run (the global minibatch halves), saying so.
        var one = MpiJob.Run(MpiJob.Widevalley(), ["train", "--resume", "--out", folder, "--epochs", "2"], Timeout, output);
        Assert.True(one.ExitCode == 0, $"exit code {one.ExitCode}: {one.Errors}");
        Assert.Contains("the checkpoint was written by 2 ranks and this job has 1", one.Errors);
    }

    /// <summary>
    /// A test-only replica optimizer: plain SGD per rank whose reference is the allreduce-average of the replicas'
    /// weights, put back afterwards.
    /// </summary>
    sealed class AveragingSgd(IEnumerable<TorchSharp.Modules.Parameter> parameters, double lr, ICollectives collectives)
        : TorchSharp.Modules.SGD([new TorchSharp.Modules.SGD.ParamGroup { Parameters = parameters }], lr), WideValley.Optim.IReplicaOptimizer
    {
        readonly List<TorchSharp.Modules.Parameter> _weights = parameters.ToList();
        public ICollectives Collectives => collectives;
        public int ReferenceCalls { get; private set; }

        public IDisposable UseReference()
        {
            ReferenceCalls++;
            var flat = FlatBuffer.LayoutOf(_weights);
            var own = FlatBuffer.LayoutOf(_weights);
            own.CopyFrom(_weights);
            flat.CopyFrom(_weights);
            collectives.AllReduceAverage(flat.Flat);
            flat.CopyTo(_weights);
            return new Restore(() => { own.CopyTo(_weights); own.Dispose(); flat.Dispose(); });
        }

        sealed class Restore(Action undo) : IDisposable
        {
            public void Dispose() => undo();
        }
    }

    /// <summary>
    /// Collectives of one rank of a 2-rank job whose operations move nothing: the trainer behaves as that rank does in
    /// a real job (agreements and gathers are made, results are its own), so what it writes is what that rank writes,
    /// and a checkpoint it makes is one of a 2-rank job, made in one process.
    /// </summary>
    sealed class LoneRank(int rank) : ICollectives
    {
        public int Rank => rank;
        public int Size => 2;
        public string Description => $"rank {rank} of 2 (test)";
        public void AllReduceSum(Tensor tensor) { }
        public void AllReduceAverage(Tensor tensor) { }
        public void Broadcast(Tensor tensor, int root) { }
        public void Barrier() { }
        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        public void Abort(string reason, int exitCode = 1) => throw new InvalidOperationException(reason);
        public void Dispose() { }
    }

    [Fact]
    public void AReplicaCheckpointOfTwoRanksIsRefusedByAJobOfOneAndReplicasAreEvaluatedAtTheReference()
    {
        using var dir = new TempDir("widevalley-dtrain-replicas");
        var config = new RunConfig
        {
            Model = "small-mnistfc", Data = "fashion-mnist", DataDir = TestMachine.FashionMnistFolder, MaxTrainSamples = 256,
            BatchSize = 32, Epochs = 1, Threads = 1,
        };
        using (var prepared = RunSetup.Prepare(config, null))
        {
            var twoRanks = new LoneRank(0);
            var optimizer = new AveragingSgd(prepared.Task.Model.parameters(), 0.1, twoRanks);
            var options = prepared.TrainerOptions with { OutputDirectory = dir.Path, Collectives = twoRanks, Distributed = DistributedMode.Replicas, TensorBoard = false };
            var result = new Trainer(prepared.Task, optimizer, options).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.True(optimizer.ReferenceCalls >= 1, "the epoch's evaluation did not use the replicas' reference");
            var meta = Checkpoint.ReadMeta(Path.Combine(dir.Path, Trainer.CheckpointFileName));
            Assert.Equal(("replicas", 2), (meta.Distributed, meta.WorldSize));
        }
        using (var prepared = RunSetup.Prepare(config with { Epochs = 2 }, null))
        {
            var one = new SingleProcessCollectives();
            var optimizer = new AveragingSgd(prepared.Task.Model.parameters(), 0.1, one);
            var options = prepared.TrainerOptions with { Epochs = 2, OutputDirectory = dir.Path, Collectives = one, Distributed = DistributedMode.Replicas, TensorBoard = false };
            var refused = Assert.Throws<InvalidOperationException>(() => new Trainer(prepared.Task, optimizer, options).Run(resume: true));
            Assert.Contains("holds 2 replicas (one per rank); this job has 1 rank", refused.Message);
            Assert.Contains("mpirun -np 2", refused.Message);
        }
    }

    [Fact]
    public void AKilledRankEndsTheJobWithinTheBoundAndTheCheckpointStaysResumable()
    {
        using var dir = new TempDir("widevalley-dtrain-kill");
        var folder = dir.File("run");
        var checkpoint = Path.Combine(folder, Trainer.CheckpointFileName);
        string[] run = [.. Common(200), "--batch-size", "32", "--distributed", "data-parallel", "--checkpoint-every", "4"];
        TimeSpan? sinceKill = null;
        var killedAt = new Stopwatch();
        var job = TwoRanks([.. run, "--out", folder], mustSucceed: false, started: mpirun =>
        {
            // Wait for a checkpoint, then SIGKILL rank 1 (no chance to say anything or to abort the job itself).
            var waited = Stopwatch.StartNew();
            while (!File.Exists(checkpoint) && waited.Elapsed < TimeSpan.FromMinutes(2) && !mpirun.HasExited) Thread.Sleep(200);
            Assert.True(File.Exists(checkpoint), "no checkpoint appeared within 2 minutes");
            Thread.Sleep(1500);
            var rank1 = MpiJob.ChildrenOf(mpirun.Id).FirstOrDefault(pid => MpiJob.RankOf(pid) == 1);
            Assert.True(rank1 != 0, "rank 1's process was not found among mpirun's children");
            Process.GetProcessById(rank1).Kill();
            killedAt.Start();
            mpirun.WaitForExit(TimeSpan.FromMinutes(2));
            sinceKill = killedAt.Elapsed;
        });
        output.WriteLine($"the job ended {sinceKill?.TotalSeconds:0.0} s after rank 1 was killed, exit code {job.ExitCode}");
        Assert.NotEqual(0, job.ExitCode);
        Assert.True(sinceKill is { } s && s < TimeSpan.FromSeconds(30), $"the job took {sinceKill} to end after a rank was killed (bound 30 s)");
        // The last checkpoint is intact (written atomically; the killed job left no half-written file in its place)...
        var meta = Checkpoint.Verify(checkpoint);
        Assert.True(meta.OuterSteps > 0);
        // ... and resumable: the job goes on from it and finishes.
        var resumed = TwoRanks(["train", "--resume", "--out", folder, "--epochs", (meta.CompletedEpochs + 1).ToString()]);
        Assert.Contains("finished", resumed.Output);
    }

    [Fact]
    public void RankOneWritesNothingIntoTheRunFolder()
    {
        using var dir = new TempDir("widevalley-dtrain-rank1");
        var config = new RunConfig
        {
            Model = "small-mnistfc", Data = "fashion-mnist", DataDir = TestMachine.FashionMnistFolder, MaxTrainSamples = 256,
            BatchSize = 32, Epochs = 2, Threads = 1, Distributed = DistributedTraining.DataParallelName, CheckpointEvery = "2",
        };
        using var run = RunSetup.Prepare(config, dir.Path, collectives: new LoneRank(1));
        var result = run.CreateTrainer().Run();
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
        // The same run as rank 0 (a job of one) writes its folder: the test can see writing.
        using var rootDir = new TempDir("widevalley-dtrain-rank0");
        using var root = RunSetup.Prepare(config, rootDir.Path, collectives: new SingleProcessCollectives());
        root.CreateTrainer().Run();
        Assert.True(File.Exists(Path.Combine(rootDir.Path, Trainer.CheckpointFileName)));
    }

    [Fact]
    public void RankSeedsKeepRankZeroOnTheRunSeedAndDifferElsewhere()
    {
        Assert.Equal(7, DistributedTraining.RankSeed(7, 0));
        var seeds = Enumerable.Range(0, 64).Select(r => DistributedTraining.RankSeed(7, r)).ToList();
        Assert.Equal(seeds.Count, seeds.Distinct().Count());
        Assert.Equal(seeds, Enumerable.Range(0, 64).Select(r => DistributedTraining.RankSeed(7, r)));
    }
}
