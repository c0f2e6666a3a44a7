using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Connectivity;
using WideValley.Data;
using WideValley.Experiments;
using WideValley.Models;
using WideValley.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace WideValley.Benchmarks;

/// <summary>Where the network rows of <see cref="ConnectBenchmark"/> get their images.</summary>
public static class ConnectBenchmarkData
{
    /// <summary>Fashion-MNIST (missing files are an error).</summary>
    public const string FashionMnist = DatasetCatalog.FashionMnist;
    /// <summary>Standard normal 1x28x28 images with uniform labels (the cost does not depend on the values).</summary>
    public const string Synthetic = "synthetic";
    /// <summary>The accepted values.</summary>
    public static IReadOnlyList<string> All { get; } = [FashionMnist, Synthetic];
}

/// <summary>What to measure in <see cref="ConnectBenchmark"/>.</summary>
public sealed record ConnectBenchmarkOptions
{
    /// <summary>Zoo classifier of the network rows (default: Freeman and Bruna's MNIST CNN).</summary>
    public string Model { get; init; } = ModelZoo.FbMnistCnnName;
    /// <summary>Images of the network rows: <see cref="ConnectBenchmarkData.FashionMnist"/> or <see cref="ConnectBenchmarkData.Synthetic"/>.</summary>
    public string Data { get; init; } = ConnectBenchmarkData.FashionMnist;
    /// <summary>Folder holding Fashion-MNIST's files (null: the catalogue's usual search).</summary>
    public string? DataDir { get; init; }
    /// <summary>Training minibatch of the network's bead (and of the plain loop); `widevalley connect`'s default.</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>K, optimizer steps of the network's bead per timed round.</summary>
    public int Steps { get; init; } = 20;
    /// <summary>Steps between two measures of the network's bead (<see cref="ModuleProblemOptions.CheckEvery"/>).</summary>
    public int CheckEvery { get; init; } = 10;
    /// <summary>Test samples every network measure evaluates (the first ones of the test set).</summary>
    public int EvaluationSamples { get; init; } = 500;
    /// <summary>G of the network's segment (the authors' MNIST grid: 20); G − 1 points are measured, t = 0 is the bead's own measure.</summary>
    public int Grid { get; init; } = 20;
    /// <summary>Training minibatches that recompute BatchNorm statistics before each measure (0 = a full pass, the library's default); ignored without BatchNorm.</summary>
    public int BatchNormMinibatches { get; init; }
    /// <summary>K of the polynomial toy's bead (full-batch Adam steps per timed round).</summary>
    public int ToySteps { get; init; } = 300;
    /// <summary>Steps between two measures of the toy's bead (the toy's default, 15).</summary>
    public int ToyCheckEvery { get; init; } = PolynomialToyOptions.DefaultCheckEvery;
    /// <summary>G of the toy's segment (the authors' toy grid: 100).</summary>
    public int ToyGrid { get; init; } = 100;
    /// <summary>Library/plain pairs of each toy row per round (the toy's operations take milliseconds: more pairs, steadier medians).</summary>
    public int ToyRepeats { get; init; } = 5;
    /// <summary>Timed rounds (medians are reported).</summary>
    public int Rounds { get; init; } = 5;
    /// <summary>Untimed rounds first.</summary>
    public int WarmupRounds { get; init; } = 1;
    /// <summary>libtorch threads (0 = libtorch's default).</summary>
    public int Threads { get; init; }
    /// <summary>Seed of the weights, the synthetic data and the minibatch orders.</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid value by its option.</summary>
    public void Validate()
    {
        if (!ModelZoo.Names.Contains(Model))
            throw new ArgumentException($"--model {Model}: unknown network; known: {string.Join(", ", ModelZoo.Names)}");
        if (ModelZoo.Describe(Model).Kind != ModelKind.Classifier)
            throw new ArgumentException($"--model {Model}: a language model; the bench measures image classifiers on {ConnectBenchmarkData.FashionMnist} " +
                                        $"({string.Join(", ", ModelZoo.Names.Where(n => ModelZoo.Describe(n).Kind == ModelKind.Classifier))})");
        if (!ConnectBenchmarkData.All.Contains(Data))
            throw new ArgumentException($"--data {Data}: expected {string.Join(" or ", ConnectBenchmarkData.All)}");
        if (BatchSize < 1) throw new ArgumentException($"--batch-size must be at least 1, got {BatchSize}");
        if (Steps < 1) throw new ArgumentException($"--steps must be at least 1, got {Steps}");
        if (CheckEvery < 1) throw new ArgumentException($"--check-every must be at least 1, got {CheckEvery}");
        if (EvaluationSamples < 1) throw new ArgumentException($"--eval-samples must be at least 1, got {EvaluationSamples}");
        if (Grid < 2) throw new ArgumentException($"--grid must be at least 2 (G − 1 points are measured), got {Grid}");
        if (BatchNormMinibatches < 0) throw new ArgumentException($"--bn-minibatches must be 0 (a full pass) or positive, got {BatchNormMinibatches}");
        if (ToySteps < 1) throw new ArgumentException($"--toy-steps must be at least 1, got {ToySteps}");
        if (ToyCheckEvery < 1) throw new ArgumentException($"--toy-check-every must be at least 1, got {ToyCheckEvery}");
        if (ToyGrid < 2) throw new ArgumentException($"--toy-grid must be at least 2 (G − 1 points are measured), got {ToyGrid}");
        if (ToyRepeats < 1) throw new ArgumentException($"--toy-repeats must be at least 1, got {ToyRepeats}");
        if (Rounds < 3) throw new ArgumentException($"--rounds must be at least 3 for a median, got {Rounds}");
        if (WarmupRounds < 0) throw new ArgumentException($"--warmup must be zero or positive, got {WarmupRounds}");
        if (Threads < 0) throw new ArgumentException($"--threads must be 0 (libtorch's default) or positive, got {Threads}");
    }

    /// <summary>Measures a bead takes in K steps checked every c: one at the start, one after every c steps and after the last.</summary>
    public static int BeadMeasures(int steps, int checkEvery) => 1 + (steps + checkEvery - 1) / checkEvery;
}

/// <summary>One comparison: the library's operation against the plain loop of the same size, medians in milliseconds.</summary>
/// <param name="Problem">"network" or "toy".</param>
/// <param name="Operation">"bead" (training with its checks) or "segment" (the grid's measures).</param>
/// <param name="Steps">Optimizer steps per round (0 for a segment).</param>
/// <param name="Evaluations">Evaluations over the evaluation set per round, on both sides.</param>
/// <param name="LibraryMs">Median of the library's operation.</param>
/// <param name="PlainMs">Median of the plain loop.</param>
/// <param name="LibraryTimesMs">Every timed run of the library's operation.</param>
/// <param name="PlainTimesMs">Every timed run of the plain loop, pair by pair with <paramref name="LibraryTimesMs"/>.</param>
public sealed record ConnectBenchmarkRow(string Problem, string Operation, int Steps, int Evaluations, double LibraryMs, double PlainMs,
    IReadOnlyList<double> LibraryTimesMs, IReadOnlyList<double> PlainTimesMs)
{
    /// <summary>The ratio of the medians: <see cref="LibraryMs"/> / <see cref="PlainMs"/>.</summary>
    public double Ratio => LibraryMs / PlainMs;
    /// <summary>
    /// The median over pairs of library / plain, each pair run back to back: what the target is judged on, because a
    /// change of the machine's load between pairs cancels in it (it does not in <see cref="Ratio"/>).
    /// </summary>
    public double PairedRatio => Medians.Of(LibraryTimesMs.Zip(PlainTimesMs, (l, p) => l / p).ToArray());
    /// <summary>Whether <see cref="PairedRatio"/> is within <see cref="ConnectBenchmark.TargetRatio"/>.</summary>
    public bool TargetMet => PairedRatio <= ConnectBenchmark.TargetRatio;
}

/// <summary>Result of <see cref="ConnectBenchmark"/>.</summary>
/// <param name="Options">What was measured.</param>
/// <param name="Parameters">Trainable parameters of the network.</param>
/// <param name="HasBatchNorm">Whether the network has BatchNorm (then every library measure recomputes its statistics first).</param>
/// <param name="DataDescription">The network's data.</param>
/// <param name="ToyDimension">Parameters of the polynomial toy.</param>
/// <param name="Rows">Network bead, network segment, toy bead, toy segment.</param>
/// <param name="NetworkEvaluationDifference">|plain − library| of the network's loss at the point the segment left in the model: both evaluate the same.</param>
/// <param name="ToyEvaluationDifference">|plain − library| of the toy's MAE at the bead's start point: the plain network is the toy's.</param>
/// <param name="LoadMs">Median time of loading a point into the network (<see cref="ModuleProblem.Load"/>), part of every library measure.</param>
/// <param name="Threads">libtorch threads in use.</param>
/// <param name="Niceness">The process's nice value (null where unknown).</param>
/// <param name="OtherProcessesShare">Share of the machine's CPU other processes used during the measurement (null where unknown).</param>
public sealed record ConnectBenchmarkResult(ConnectBenchmarkOptions Options, long Parameters, bool HasBatchNorm, string DataDescription, long ToyDimension,
    IReadOnlyList<ConnectBenchmarkRow> Rows, double NetworkEvaluationDifference, double ToyEvaluationDifference, double LoadMs, int Threads, int? Niceness,
    double? OtherProcessesShare);

/// <summary>
/// Issue 18's speed target: a bead's training and a segment's evaluation of Dynamic String Sampling cost at most 1.2x
/// the plain training steps and forward passes of the same size.
/// <list type="bullet">
/// <item>Bead: <see cref="ModuleProblem.TrainBead"/> (<see cref="PolynomialToy.TrainBead"/> for the toy) for exactly K
/// steps (MaxSteps = K, an unreachable target), which loads the start, measures it, and measures again every c steps
/// and after the last, then copies the trained point out; against a plain loop from the same start with a fresh
/// optimizer of the same kind and the same minibatch size (zero_grad, forward, loss, backward, step) that evaluates
/// the same number of times.</item>
/// <item>Segment: the G − 1 measures of one segment as <see cref="DynamicStringSampling"/> takes them (interpolate into
/// one buffer, <see cref="IConnectivityProblem.Measure"/>: load, recompute BatchNorm statistics where there are any,
/// evaluate); against G − 1 plain evaluations (forward, summed loss, errors) of the model as it is.</item>
/// </list>
/// The library and the plain side alternate within each round, the order flipping every round, so both see the same
/// machine load.
/// </summary>
public static class ConnectBenchmark
{
    /// <summary>The target: library time at most this multiple of the plain time.</summary>
    public const double TargetRatio = 1.2;

    /// <summary>Learning rate of the network's Adam (the authors' MNIST beads).</summary>
    const double NetworkLearningRate = 1e-4;

    /// <summary>Evaluation minibatch of both sides (<see cref="ClassificationTask"/>'s default).</summary>
    const int EvaluationBatchSize = 1000;

    /// <summary>Training images of the synthetic set.</summary>
    const int SyntheticTrainingSamples = 10_000;

    /// <summary>Runs the benchmark; <paramref name="log"/> gets a line per round (null: silent).</summary>
    public static ConnectBenchmarkResult Run(ConnectBenchmarkOptions options, Action<string>? log = null)
    {
        options.Validate();
        TorchRuntime.EnsureInitialized();
        TorchRuntime.SetThreads(options.Threads);
        TorchRuntime.Seed(options.Seed);

        var dataset = LoadData(options);
        var dataDescription = $"{dataset.Name}: {dataset.Train.Count:N0} training images, the first {dataset.Test.Count:N0} test images ({dataset.Source})";
        var model = (nn.Module<Tensor, Tensor>)ModelZoo.Create(options.Model, new ModelOptions());
        using var task = new ClassificationTask(model, dataset, options.BatchSize, options.Seed, EvaluationBatchSize, ownsData: true);
        using var problem = new ModuleProblem(task, new ModuleProblemOptions
        {
            OptimizerFactory = ModuleProblemOptions.Adam(NetworkLearningRate),
            CheckEvery = options.CheckEvery,
            MaxSteps = options.Steps,
            BatchNormMinibatches = options.BatchNormMinibatches,
        });
        using var start = problem.CurrentPoint();
        Tensor end;
        using (var other = ModelZoo.Create(options.Model, new ModelOptions())) end = problem.PointOf(other);
        using var endPoint = end;
        using var stream = new MinibatchStream(dataset.Train, options.BatchSize, options.Seed + 1);
        var network = new NetworkSide(problem, model, dataset.Test, stream, start, endPoint, options);

        using var toy = new PolynomialToy(new PolynomialToyOptions { CheckEvery = options.ToyCheckEvery, MaxSteps = options.ToySteps });
        using var toyPoints = toy.RandomInitialisations(2, (ulong)options.Seed);
        using var toyA = toyPoints[0].clone();
        using var toyB = toyPoints[1].clone();
        using var toySide = new ToySide(toy, toyA, toyB, options);

        var sides = new (string Problem, string Operation, Action Library, Action Plain, int Pairs)[]
        {
            ("network", "bead", network.Bead, network.PlainTraining, 1),
            ("network", "segment", network.Segment, network.PlainForwards, 1),
            ("toy", "bead", toySide.Bead, toySide.PlainTraining, options.ToyRepeats),
            ("toy", "segment", toySide.Segment, toySide.PlainForwards, options.ToyRepeats),
        };
        var libraryTimes = sides.Select(_ => new List<double>()).ToArray();
        var plainTimes = sides.Select(_ => new List<double>()).ToArray();
        var share = CpuShare.Start();
        for (var round = 0; round < options.WarmupRounds + options.Rounds; round++)
        {
            var timed = round >= options.WarmupRounds;
            var line = new StringBuilder(string.Format(CultureInfo.InvariantCulture, "round {0}{1}:", round + 1, timed ? "" : " (warm-up)"));
            for (var i = 0; i < sides.Length; i++)
            {
                var (librarySum, plainSum) = (0.0, 0.0);
                for (var pair = 0; pair < sides[i].Pairs; pair++)
                {
                    // The order flips every pair: neither side always runs first (warm caches, a load change mid-round).
                    double library, plain;
                    if ((round * sides[i].Pairs + pair) % 2 == 0)
                    {
                        library = Time(sides[i].Library);
                        plain = Time(sides[i].Plain);
                    }
                    else
                    {
                        plain = Time(sides[i].Plain);
                        library = Time(sides[i].Library);
                    }
                    if (timed)
                    {
                        libraryTimes[i].Add(library);
                        plainTimes[i].Add(plain);
                    }
                    librarySum += library;
                    plainSum += plain;
                }
                line.Append(string.Format(CultureInfo.InvariantCulture, " {0} {1} {2:0.0}/{3:0.0} ms;", sides[i].Problem, sides[i].Operation,
                    librarySum / sides[i].Pairs, plainSum / sides[i].Pairs));
            }
            log?.Invoke(line.ToString().TrimEnd(';') + " (library/plain, toy: mean of the round's pairs)");
        }
        var otherShare = share.OtherProcessesShare();

        var networkDifference = network.EvaluationDifference();
        var loadMs = Medians.Of(Enumerable.Range(0, 21).Select(_ => Time(() => problem.Load(start))).ToArray());
        var toyDifference = toySide.EvaluationDifference();
        var bead = ConnectBenchmarkOptions.BeadMeasures(options.Steps, options.CheckEvery);
        var toyBead = ConnectBenchmarkOptions.BeadMeasures(options.ToySteps, options.ToyCheckEvery);
        var counts = new (int Steps, int Evaluations)[] { (options.Steps, bead), (0, options.Grid - 1), (options.ToySteps, toyBead), (0, options.ToyGrid - 1) };
        var rows = sides.Select((s, i) => new ConnectBenchmarkRow(s.Problem, s.Operation, counts[i].Steps, counts[i].Evaluations,
            Medians.Of(libraryTimes[i]), Medians.Of(plainTimes[i]), libraryTimes[i], plainTimes[i])).ToArray();
        return new ConnectBenchmarkResult(options, problem.Dimension, problem.HasBatchNorm, dataDescription, toy.Dimension, rows,
            networkDifference, toyDifference, loadMs, get_num_threads(), Niceness(), otherShare);
    }

    static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalMilliseconds;
    }

    static ClassificationDataset LoadData(ConnectBenchmarkOptions o)
    {
        if (o.Data == ConnectBenchmarkData.Synthetic)
        {
            using var generator = new Generator((ulong)o.Seed);
            using var scope = NewDisposeScope();
            var train = new LabeledData(randn([SyntheticTrainingSamples, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
                randint(0, 10, [SyntheticTrainingSamples], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope(), 10);
            var test = new LabeledData(randn([o.EvaluationSamples, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
                randint(0, 10, [o.EvaluationSamples], dtype: ScalarType.Int64, generator: generator).DetachFromDisposeScope(), 10);
            return new ClassificationDataset { Name = "synthetic", Train = train, Test = test, Source = "standard normal images, uniform labels" };
        }
        var full = DatasetCatalog.LoadClassification(o.Data, new DataOptions { DataDir = o.DataDir });
        try
        {
            var test = full.Test.Take(o.EvaluationSamples);
            full.Test.Dispose();
            full.Validation?.Dispose();
            return new ClassificationDataset { Name = full.Name, Train = full.Train, Test = test, Source = full.Source, Preprocessing = full.Preprocessing };
        }
        catch
        {
            full.Dispose();
            throw;
        }
    }

    /// <summary>The network's two sides. Every round starts the bead and the plain loop from the same point.</summary>
    sealed class NetworkSide(ModuleProblem problem, nn.Module<Tensor, Tensor> model, LabeledData evaluation, MinibatchStream stream,
        Tensor start, Tensor end, ConnectBenchmarkOptions options)
    {
        public void Bead()
        {
            using var scope = NewDisposeScope();
            var result = problem.TrainBead(start, LevelMetric.Loss, -1); // a loss is never negative: exactly K steps
            if (result.Steps != options.Steps)
                throw new InvalidOperationException($"the bead took {result.Steps} steps, the benchmark asked for {options.Steps}");
        }

        public void PlainTraining()
        {
            problem.Load(start);
            var wasTraining = model.training;
            model.train();
            using var optimizer = optim.Adam(model.parameters(), NetworkLearningRate);
            Evaluate();
            for (var step = 1; step <= options.Steps; step++)
            {
                using (NewDisposeScope())
                {
                    optimizer.zero_grad();
                    var (x, y) = stream.Next();
                    var loss = F.cross_entropy(model.call(x), y);
                    loss.backward();
                    optimizer.step();
                }
                if (step % options.CheckEvery == 0 || step == options.Steps) Evaluate();
            }
            foreach (var p in model.parameters()) p.grad = null;
            model.train(wasTraining);
        }

        public void Segment()
        {
            using var point = empty_like(start);
            for (var k = 1; k < options.Grid; k++)
                problem.Measure(ParameterPath.InterpolateInto(point, start, end, (double)k / options.Grid));
        }

        public void PlainForwards()
        {
            for (var k = 1; k < options.Grid; k++) Evaluate();
        }

        /// <summary>Loss and error over the evaluation set, in eval mode without gradients: what a plain trainer's test pass does.</summary>
        double Evaluate()
        {
            var wasTraining = model.training;
            model.eval();
            try
            {
                using var noGrad = no_grad();
                double lossSum = 0;
                long errors = 0;
                foreach (var (x, y) in Batches.InOrder(evaluation, EvaluationBatchSize))
                {
                    using var scope = NewDisposeScope();
                    var logits = model.call(x);
                    lossSum += F.cross_entropy(logits, y, reduction: nn.Reduction.Sum).ToDouble();
                    errors += logits.argmax(1).ne(y).sum().item<long>();
                }
                GC.KeepAlive(errors);
                return lossSum / evaluation.Count;
            }
            finally
            {
                model.train(wasTraining);
            }
        }

        /// <summary>|plain − library| of the loss at the last grid point (loaded and, with BatchNorm, recalibrated by the library).</summary>
        public double EvaluationDifference()
        {
            using var point = ParameterPath.Interpolate(start, end, (double)(options.Grid - 1) / options.Grid);
            var library = problem.Measure(point).Loss;
            return Math.Abs(Evaluate() - library);
        }
    }

    /// <summary>The polynomial toy's two sides: its closed-form batched trainer against a plain TorchSharp network of the same shape.</summary>
    sealed class ToySide : IDisposable
    {
        readonly PolynomialToy _toy;
        readonly Tensor _a, _b;
        readonly ConnectBenchmarkOptions _options;
        readonly nn.Module<Tensor, Tensor> _network;
        readonly Tensor _trainX, _trainY, _evaluationX, _evaluationY;

        public ToySide(PolynomialToy toy, Tensor a, Tensor b, ConnectBenchmarkOptions options)
        {
            _toy = toy;
            _a = a;
            _b = b;
            _options = options;
            var o = toy.Options;
            var layers = new List<nn.Module<Tensor, Tensor>>
            {
                nn.Linear(PolynomialToy.Input, PolynomialToy.Hidden1, hasBias: o.HasBiases, dtype: ScalarType.Float64), nn.Sigmoid(),
                nn.Linear(PolynomialToy.Hidden1, PolynomialToy.Hidden2, hasBias: o.HasBiases, dtype: ScalarType.Float64), nn.Sigmoid(),
                nn.Linear(PolynomialToy.Hidden2, PolynomialToy.Output, hasBias: o.HasBiases, dtype: ScalarType.Float64),
            };
            if (o.HasSigmoidOutput) layers.Add(nn.Sigmoid());
            _network = nn.Sequential(layers);
            (_trainX, _trainY) = Samples(toy.TrainingInputs(), o.Target);
            (_evaluationX, _evaluationY) = Samples(toy.EvaluationInputs(), o.Target);
        }

        static (Tensor X, Tensor Y) Samples(double[] inputs, PolynomialTarget target) =>
            (tensor(inputs, ScalarType.Float64).view(-1, 1), tensor(inputs.Select(x => PolynomialToy.Polynomial(target, x)).ToArray(), ScalarType.Float64).view(-1, 1));

        public void Bead()
        {
            using var scope = NewDisposeScope();
            var result = _toy.TrainBead(_a, LevelMetric.Loss, -1); // an MAE is never negative: exactly K steps
            if (result.Steps != _options.ToySteps)
                throw new InvalidOperationException($"the toy's bead took {result.Steps} steps, the benchmark asked for {_options.ToySteps}");
        }

        /// <summary>Copies a toy point into the plain network: the toy's W (in, out) is a Linear's weight transposed.</summary>
        void Load(Tensor point)
        {
            using var noGrad = no_grad();
            var linears = _network.modules().OfType<TorchSharp.Modules.Linear>().ToArray();
            long[][] shapes = [[PolynomialToy.Input, PolynomialToy.Hidden1], [PolynomialToy.Hidden1, PolynomialToy.Hidden2], [PolynomialToy.Hidden2, PolynomialToy.Output]];
            long offset = 0;
            for (var i = 0; i < 3; i++)
            {
                var count = shapes[i][0] * shapes[i][1];
                using var w = point.narrow(0, offset, count).view(shapes[i]);
                linears[i].weight!.copy_(w.t());
                offset += count;
            }
            if (!_toy.Options.HasBiases) return;
            foreach (var linear in linears)
            {
                var count = linear.bias!.shape[0];
                using var bias = point.narrow(0, offset, count);
                linear.bias.copy_(bias);
                offset += count;
            }
        }

        public void PlainTraining()
        {
            Load(_a);
            var o = _toy.Options;
            using var optimizer = optim.Adam(_network.parameters(), o.LearningRate, o.Beta1, o.Beta2, o.Epsilon);
            Evaluate();
            for (var step = 1; step <= _options.ToySteps; step++)
            {
                using (NewDisposeScope())
                {
                    optimizer.zero_grad();
                    var loss = _network.call(_trainX).sub(_trainY).abs().mean();
                    loss.backward();
                    optimizer.step();
                }
                if (step % _options.ToyCheckEvery == 0 || step == _options.ToySteps) Evaluate();
            }
        }

        public void Segment()
        {
            using var point = empty_like(_a);
            for (var k = 1; k < _options.ToyGrid; k++)
                _toy.Measure(ParameterPath.InterpolateInto(point, _a, _b, (double)k / _options.ToyGrid));
        }

        public void PlainForwards()
        {
            for (var k = 1; k < _options.ToyGrid; k++) Evaluate();
        }

        double Evaluate()
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            return _network.call(_evaluationX).sub(_evaluationY).abs().mean().ToDouble();
        }

        /// <summary>|plain − library| of the MAE at the start point: the plain network computes the toy's function.</summary>
        public double EvaluationDifference()
        {
            Load(_a);
            return Math.Abs(Evaluate() - _toy.Measure(_a).Loss);
        }

        public void Dispose()
        {
            _network.Dispose();
            _trainX.Dispose();
            _trainY.Dispose();
            _evaluationX.Dispose();
            _evaluationY.Dispose();
        }
    }

    /// <summary>The nice value of this process (field 19 of /proc/self/stat), null where unknown.</summary>
    internal static int? Niceness()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return int.TryParse(fields[16], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var nice) ? nice : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    static string Describe(ConnectBenchmarkRow r, ConnectBenchmarkOptions o) => (r.Problem, r.Operation) switch
    {
        ("network", "bead") => $"bead: {o.Steps} Adam steps of batch {o.BatchSize}, {r.Evaluations} measures",
        ("network", "segment") => $"segment: G = {o.Grid}, {r.Evaluations} measures",
        ("toy", "bead") => $"bead: {o.ToySteps} full-batch Adam steps, {r.Evaluations} measures",
        _ => $"segment: G = {o.ToyGrid}, {r.Evaluations} measures",
    };

    /// <summary>The result as plain text lines.</summary>
    public static IEnumerable<string> Summary(ConnectBenchmarkResult r)
    {
        var c = CultureInfo.InvariantCulture;
        foreach (var row in r.Rows)
            yield return string.Format(c, "{0} {1}: library {2:0.0} ms, plain {3:0.0} ms, ratio {4:0.000}, paired ratio {5:0.000} (target <= {6}: {7})",
                row.Problem == "network" ? r.Options.Model : "polynomial toy", Describe(row, r.Options), row.LibraryMs, row.PlainMs, row.Ratio,
                row.PairedRatio, TargetRatio, row.TargetMet ? "met" : "NOT met");
        yield return string.Format(c, "evaluation check |plain - library|: network {0:G3}, toy {1:G3}; {2} threads{3}{4}",
            r.NetworkEvaluationDifference, r.ToyEvaluationDifference, r.Threads,
            r.Niceness is { } n ? $", nice {n}" : "",
            r.OtherProcessesShare is { } s ? string.Format(c, "; other processes used {0:0}% of the machine meanwhile", 100 * s) : "");
    }

    /// <summary>The result with the key names the reports use (snake_case).</summary>
    public static JsonObject ToJson(ConnectBenchmarkResult r)
    {
        var o = r.Options;
        return new JsonObject
        {
            ["benchmark"] = "connect",
            ["model"] = o.Model,
            ["parameters"] = r.Parameters,
            ["batch_norm"] = r.HasBatchNorm,
            ["bn_minibatches"] = o.BatchNormMinibatches,
            ["data"] = r.DataDescription,
            ["batch_size"] = o.BatchSize,
            ["steps"] = o.Steps,
            ["check_every"] = o.CheckEvery,
            ["evaluation_samples"] = o.EvaluationSamples,
            ["grid"] = o.Grid,
            ["toy_parameters"] = r.ToyDimension,
            ["toy_steps"] = o.ToySteps,
            ["toy_check_every"] = o.ToyCheckEvery,
            ["toy_grid"] = o.ToyGrid,
            ["toy_repeats"] = o.ToyRepeats,
            ["rounds"] = o.Rounds,
            ["warmup_rounds"] = o.WarmupRounds,
            ["target_ratio"] = TargetRatio,
            ["targets_met"] = r.Rows.All(row => row.TargetMet),
            ["rows"] = new JsonArray(r.Rows.Select(row => (JsonNode)new JsonObject
            {
                ["problem"] = row.Problem,
                ["operation"] = row.Operation,
                ["steps"] = row.Steps,
                ["evaluations"] = row.Evaluations,
                ["library_ms"] = Math.Round(row.LibraryMs, 3),
                ["plain_ms"] = Math.Round(row.PlainMs, 3),
                ["ratio"] = Math.Round(row.Ratio, 4),
                ["paired_ratio"] = Math.Round(row.PairedRatio, 4),
                ["target_met"] = row.TargetMet,
                ["library_times_ms"] = new JsonArray(row.LibraryTimesMs.Select(t => (JsonNode?)JsonValue.Create(Math.Round(t, 3))).ToArray()),
                ["plain_times_ms"] = new JsonArray(row.PlainTimesMs.Select(t => (JsonNode?)JsonValue.Create(Math.Round(t, 3))).ToArray()),
            }).ToArray()),
            ["network_evaluation_difference"] = r.NetworkEvaluationDifference,
            ["toy_evaluation_difference"] = r.ToyEvaluationDifference,
            ["load_ms"] = Math.Round(r.LoadMs, 3),
            ["threads"] = r.Threads,
            ["processors"] = Environment.ProcessorCount,
            ["nice"] = r.Niceness,
            ["other_processes_share"] = r.OtherProcessesShare is { } s ? Math.Round(s, 3) : null,
        };
    }

    /// <summary>A Markdown report of <paramref name="r"/>, quoting <paramref name="command"/> and <paramref name="machine"/>.</summary>
    public static string Markdown(ConnectBenchmarkResult r, string command, string machine, string jsonFileName)
    {
        var o = r.Options;
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.AppendLine("# Connectivity: a bead's training and a segment's evaluation against plain loops of the same size");
        md.AppendLine();
        md.AppendLine("Issue 18's speed target: Dynamic String Sampling's two costs, training a bead and measuring a segment on its grid, " +
                      $"within {TargetRatio.ToString(c)}x of plain training steps and plain forward passes of the same size. What is compared:");
        md.AppendLine();
        md.AppendLine(string.Format(c,
            "- **bead**: `ModuleProblem.TrainBead` (`PolynomialToy.TrainBead` for the toy) run for exactly K steps (budget K, an unreachable target), " +
            "which loads the start point, measures it, trains and measures again every c steps and after the last, and copies the trained point out; " +
            "against a plain loop from the same start: a fresh optimizer of the same kind, K steps of zero_grad, forward, loss, backward, step on " +
            "minibatches of the same size, and the same number of evaluations over the same evaluation set at the same steps."));
        md.AppendLine(string.Format(c,
            "- **segment**: the G − 1 measures of one segment as `DynamicStringSampling` takes them (t = k/G, k = 1..G − 1; t = 0 is the bead's own " +
            "measure): interpolate into one buffer, `Measure` = load the point into the model{0}, evaluate; against G − 1 plain evaluations " +
            "(forward, summed loss, errors) of the model with its own parameters: no interpolation, no loading.",
            r.HasBatchNorm ? ", recompute BatchNorm statistics" + (o.BatchNormMinibatches == 0 ? " (a full pass over the training set)" : $" ({o.BatchNormMinibatches} minibatches)") : ""));
        md.AppendLine();
        md.AppendLine(string.Format(c,
            "Network: `{0}` ({1:N0} parameters, {2}), {3}; Adam at lr 1e-4 (the authors' beads), evaluation batches of {4}. " +
            "Toy: the quadratic polynomial toy ({5} parameters, 10,000 training and 10,000 evaluation samples, full-batch Adam as the authors' TensorFlow), " +
            "its plain side a TorchSharp `nn.Sequential` of the same 1-4-4-1 sigmoid network in float64 with `optim.Adam` and autograd. " +
            "Library and plain run as back-to-back pairs, the order flipping every pair; {6} warm-up and {7} timed rounds, one pair per network row " +
            "and {8} pairs per toy row in each round (the toy's operations take milliseconds). Reported: the median time of each side, their ratio, " +
            "and the median over pairs of library / plain (the paired ratio), on which the target is judged: a change of the machine's load between " +
            "pairs cancels in it, not in the ratio of medians.",
            o.Model, r.Parameters, r.HasBatchNorm ? "with BatchNorm" : "no BatchNorm", r.DataDescription, EvaluationBatchSize, r.ToyDimension,
            o.WarmupRounds, o.Rounds, o.ToyRepeats));
        md.AppendLine();
        md.AppendLine("```sh");
        md.AppendLine(command);
        md.AppendLine("```");
        md.AppendLine();
        md.AppendLine($"Machine: {machine}.");
        md.AppendLine();
        md.AppendLine("| problem | operation | library ms (median) | plain ms (median) | ratio of medians | paired ratio (median) | target <= 1.2 |");
        md.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var row in r.Rows)
            md.AppendLine(string.Format(c, "| {0} | {1} | {2:0.0} | {3:0.0} | {4:0.000} | **{5:0.000}** | {6} |",
                row.Problem == "network" ? o.Model : "polynomial toy", Describe(row, o), row.LibraryMs, row.PlainMs, row.Ratio, row.PairedRatio,
                row.TargetMet ? "met" : "**missed**"));
        md.AppendLine();
        var met = r.Rows.Count(row => row.TargetMet);
        md.AppendLine(string.Format(c, "{0} of {1} targets met{2}.", met, r.Rows.Count,
            met == r.Rows.Count ? "" : ": missed " + string.Join("; ", r.Rows.Where(row => !row.TargetMet).Select(row => $"{row.Problem} {row.Operation} at {row.PairedRatio.ToString("0.000", c)}"))));
        md.AppendLine();
        md.AppendLine(string.Format(c,
            "Both sides compute the same numbers: the plain evaluation of the point the library last loaded differs from the library's measure by {0:G3} " +
            "(network loss) and, with the toy's weights copied into the plain network, by {1:G3} (toy MAE).",
            r.NetworkEvaluationDifference, r.ToyEvaluationDifference));
        md.AppendLine();
        var segment = r.Rows.First(row => row.Problem == "network" && row.Operation == "segment");
        md.AppendLine(string.Format(c,
            "Where the library's extra time could go: loading a point from the flat vector into the network's {0:N0} parameters takes {1:0.00} ms " +
            "(median of 21), against {2:0.0} ms per measure of the segment; the per-step `.item()` reads of the bead's minibatch loss and errors " +
            "are CPU-side and need no device synchronisation here.",
            r.Parameters, r.LoadMs, segment.LibraryMs / segment.Evaluations));
        md.AppendLine();
        md.AppendLine(string.Format(c, "{0} libtorch threads{1}{2}. The machine is shared: other processes' CPU use moves both sides alike because they alternate, " +
                                       "but absolute times are slower than on an idle machine.",
            r.Threads,
            r.Niceness is { } n ? $", run at nice {n}" : "",
            r.OtherProcessesShare is { } s ? string.Format(c, "; other processes used {0:0}% of the machine's CPU during the measurement", 100 * s) : ""));
        md.AppendLine();
        md.AppendLine($"Raw output: [{jsonFileName}]({jsonFileName}) (the same object `--json` prints, with every round's times).");
        return md.ToString();
    }
}
