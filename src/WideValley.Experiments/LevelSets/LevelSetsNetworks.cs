using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using TorchSharp.Modules;
using WideValley.Connectivity;
using WideValley.Data;
using WideValley.Models;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Experiments;

/// <summary>
/// Freeman and Bruna's level-set connectivity experiment (ICLR 2017, Sec. 3, Fig. 1), networks' part: their MNIST CNN
/// (<see cref="LevelSetsNetworkSettings.Cnn"/>) on Fashion-MNIST over test-error levels, and the small char-LSTM
/// (<see cref="LevelSetsNetworkSettings.CharLstm"/>) on a text corpus over test-perplexity levels, or in its place, when
/// the Penn Treebank is given, the paper's own PTB network (<see cref="LevelSetsNetworkSettings.PtbLstm"/>: 2 × 200 word
/// LSTM, endpoints and beads by plain SGD at lr 1.0 with the gradient norm clipped at 5, batch 20, 20 unrolled steps, the
/// endpoints' rate halved per epoch after the fourth, as the authors' PTB script), with a Bézier curve
/// (Garipov et al.) between the same endpoints. Per network:
/// <list type="bullet">
/// <item>2·pairs endpoints from independent seeded initialisations, each trained ONCE through the levels in descending
/// order with one Adam run (ours): its snapshot at a level is the point where, at a measure every
/// <see cref="LevelSetsNetworkSettings.CheckEvery"/> steps, its level metric first fell to α·L0 (ours: the authors train
/// endpoints to L0 and only the beads to α·L0; the same target keeps every point of the chain equally deep). So the levels
/// share one training run per endpoint instead of training 2·pairs new networks per level.</item>
/// <item>Each pair is joined by <see cref="DynamicStringSampling"/> with the authors' preset (the CNN:
/// <see cref="StringSamplingOptions.ForMnist"/>, beads by Adam 1e-4, batch 100 as their MNIST.py; the LSTM:
/// <see cref="StringSamplingOptions.ForLanguageModel"/>, beads by Adam with the gradient norm clipped at 5), measured on
/// the test set, or for the CNN on its first <see cref="LevelSetsNetworkSettings.CnnTestImages"/> images (ours, for speed).</item>
/// <item>A quadratic Bézier curve (<see cref="CurveTraining"/>, one bend, SGD with momentum 0.9) between the same
/// endpoints, and the straight line, measured on the level metric at the same points.</item>
/// </list>
/// The records are the toys' (<see cref="LevelSetsLevelResult"/>, <see cref="LevelSetsPair"/>): for the networks
/// <see cref="LevelSetsPair.EndpointLossA"/> and <see cref="LevelSetsPair.EndpointLossB"/> hold each endpoint's value of
/// the level metric (test error in percent, or test perplexity), as <see cref="LevelSetsPair.MaxAlongPath"/> does, and the
/// endpoint steps count from the initialisation (shared levels: a deeper level's endpoints have taken more).
/// Each finished (network, level) is one JSON piece (<see cref="LevelSetsExperiment.PiecePath(string, string, double)"/>),
/// written atomically; endpoint snapshots (<see cref="LevelSetsNetworkEndpoint"/>) and the string and curve checkpoints
/// of the level in progress are kept beside them, so that an interrupted run trains nothing twice (a resumed string or
/// curve continues from its checkpoint, but the minibatch stream starts again: not bit-identical). A level's string and
/// curve checkpoints are deleted once its piece is written, and an endpoint's snapshots at finished higher levels once
/// it has a deeper one.
/// </summary>
public static class LevelSetsNetworks
{
    /// <summary>
    /// The finished piece of <paramref name="network"/> at <paramref name="level"/>, or null when there is none.
    /// </summary>
    /// <exception cref="InvalidDataException">The piece is unreadable, of another task, metric, level or pair count, or of other settings; the message names the file.</exception>
    public static LevelSetsLevelResult? ReadPiece(string piecesDir, LevelSetsNetworkSettings settings, string network, double level)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return LevelSetsExperiment.ReadLevelFile(LevelSetsExperiment.PiecePath(piecesDir, network, level), network,
            LevelSetsNetworkSettings.MetricOf(network), level, settings.Pairs, settings.KeyOf(network));
    }

    /// <summary>
    /// Computes every (network, level) without a piece in <paramref name="piecesDir"/> (which the caller holds locked),
    /// network by network, from the highest level down (each endpoint continues its training), writing each piece as it
    /// finishes. Every piece of a network is read before anything trains, so a folder of other settings fails at once.
    /// Cancelling abandons the current level (its string and curve resume from their checkpoints next time) and keeps
    /// every finished piece and endpoint snapshot.
    /// </summary>
    /// <returns>The finished levels, network by network in ascending L0.</returns>
    /// <exception cref="ArgumentException">Invalid settings, or missing data (the message names the path).</exception>
    /// <exception cref="InvalidDataException">A piece or endpoint snapshot of other settings (or damaged) is in the folder.</exception>
    public static LevelSetsOutcome Run(LevelSetsNetworkSettings settings, string piecesDir, Action<string>? log = null, CancellationToken cancellation = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentException.ThrowIfNullOrWhiteSpace(piecesDir);
        settings.Validate();
        var watch = Stopwatch.StartNew();
        Directory.CreateDirectory(piecesDir);
        var results = new List<LevelSetsLevelResult>();
        var computed = 0;
        foreach (var network in settings.Networks)
        {
            var levels = settings.Levels(network);
            var pieces = levels.Select(level => ReadPiece(piecesDir, settings, network, level)).ToArray();
            var finished = new List<LevelSetsLevelResult>();
            for (var i = 0; i < levels.Count; i++)
            {
                if (pieces[i] is not { } piece) continue;
                log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"{network} L0 = {levels[i]}: finished before ({LevelSetsExperiment.PiecePath(piecesDir, network, levels[i])})"));
                finished.Add(piece);
            }
            var missing = levels.Where((_, i) => pieces[i] is null).OrderDescending().ToArray();
            if (missing.Length > 0)
            {
                if (cancellation.IsCancellationRequested) return Interrupted();
                using var context = new NetworkContext(settings, network, piecesDir, log);
                foreach (var level in missing)
                {
                    LevelSetsLevelResult piece;
                    try
                    {
                        piece = context.RunLevel(level, cancellation);
                    }
                    catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
                    {
                        log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{network} L0 = {level}: interrupted; the finished levels are kept"));
                        return Interrupted();
                    }
                    LevelSetsExperiment.WriteLevelFile(LevelSetsExperiment.PiecePath(piecesDir, network, level), piece);
                    context.DeleteLevelCheckpoints(level);
                    finished.Add(piece);
                    computed++;
                    log?.Invoke(LevelSetsExperiment.Describe(piece) + CurveSummary(piece));
                }
            }
            results.AddRange(finished.OrderBy(p => p.Level));

            LevelSetsOutcome Interrupted()
            {
                results.AddRange(finished.OrderBy(p => p.Level));
                return new LevelSetsOutcome(results, computed, true, watch.Elapsed.TotalSeconds);
            }
        }
        return new LevelSetsOutcome(results, computed, false, watch.Elapsed.TotalSeconds);
    }

    static string CurveSummary(LevelSetsLevelResult piece)
    {
        var curves = piece.Pairs.Where(p => p.Curve is not null).Select(p => p.Curve!).ToArray();
        if (curves.Length == 0) return "";
        return string.Create(CultureInfo.InvariantCulture,
            $"; Bézier barrier {curves.Average(c => c.Barrier):G3} (straight line {curves.Average(c => c.StraightBarrier):G3}), length {curves.Average(c => c.NormalizedLength):0.000}");
    }

    /// <summary>The barrier of <paramref name="barrier"/> on <paramref name="metric"/>.</summary>
    static double BarrierOn(CurveBarrier barrier, LevelMetric metric) => metric switch
    {
        LevelMetric.ErrorPercent => barrier.ErrorPercent ?? double.NaN,
        LevelMetric.Perplexity => barrier.Perplexity ?? double.NaN,
        _ => barrier.Loss,
    };

    /// <summary>
    /// The Penn Treebank from <see cref="LevelSetsNetworkSettings.PtbDir"/>, its test split cut to the first
    /// <see cref="LevelSetsNetworkSettings.PtbTestTokens"/> words when that is set.
    /// </summary>
    static TokenCorpus LoadPtb(LevelSetsNetworkSettings settings)
    {
        var corpus = TextCorpora.LoadPtb(settings.PtbDir!);
        if (settings.PtbTestTokens is not long keep || keep >= corpus.Test.shape[0]) return corpus;
        Tensor test;
        using (var head = corpus.Test.narrow(0, 0, keep)) test = head.clone().DetachFromDisposeScope();
        corpus.Test.Dispose();
        return new TokenCorpus
        {
            Name = corpus.Name, Vocabulary = corpus.Vocabulary, Train = corpus.Train, Validation = corpus.Validation, Test = test,
            Source = corpus.Source + string.Create(CultureInfo.InvariantCulture, $", first {keep} test words"), Level = corpus.Level,
        };
    }

    /// <summary>An endpoint's training run: its current point, the steps taken, and its Adam state.</summary>
    sealed class EndpointRun : IDisposable
    {
        public required int Index { get; init; }
        public Tensor? Current;
        public long Steps;
        public double Value = double.NaN;
        public bool Started;
        public optim.Optimizer? Optimizer;

        public void SetCurrent(Tensor point)
        {
            Current?.Dispose();
            Current = point.DetachFromDisposeScope();
        }

        public void Dispose()
        {
            Current?.Dispose();
            (Optimizer as IDisposable)?.Dispose();
        }
    }

    /// <summary>One network's data, model, task, connectivity problem and endpoint runs.</summary>
    sealed class NetworkContext : IDisposable
    {
        readonly LevelSetsNetworkSettings settings;
        readonly string network;
        readonly string piecesDir;
        readonly Action<string>? log;
        readonly ITrainingTask task;
        readonly nn.Module model;
        readonly ModelOptions modelOptions;
        readonly ModuleProblem problem;
        readonly Parameter[] parameters;
        readonly EndpointRun[] runs;
        readonly LevelMetric metric;
        readonly double learningRate;
        readonly double clip;
        readonly Func<IEnumerable<Parameter>, optim.Optimizer> optimizerFactory;
        /// <summary>Training steps per pass over the training tokens (PTB's learning-rate schedule counts epochs); 0: no schedule.</summary>
        readonly long stepsPerEpoch;

        public NetworkContext(LevelSetsNetworkSettings settings, string network, string piecesDir, Action<string>? log)
        {
            this.settings = settings;
            this.network = network;
            this.piecesDir = piecesDir;
            this.log = log;
            metric = LevelSetsNetworkSettings.MetricOf(network);
            TorchRuntime.EnsureLoadable();
            if (network == LevelSetsNetworkSettings.Cnn)
            {
                var loaded = DatasetCatalog.LoadClassification(DatasetCatalog.FashionMnist, new DataOptions
                {
                    DataDir = settings.FashionMnistDir, MaxTrainSamples = settings.CnnTrainingImages, Seed = (long)settings.Seed, Log = log,
                });
                var test = loaded.Test.Take(settings.CnnTestImages);
                loaded.Test.Dispose();
                var data = new ClassificationDataset
                {
                    Name = loaded.Name, Train = loaded.Train, Validation = loaded.Validation, Test = test, Source = loaded.Source,
                    Preprocessing = loaded.Preprocessing,
                };
                modelOptions = new ModelOptions { InputChannels = (int)data.SampleShape[0], ImageSize = (int)data.SampleShape[^1], NumClasses = data.NumClasses };
                TorchRuntime.Seed((long)settings.EndpointSeed(network));
                model = ModelZoo.Create(network, modelOptions);
                task = new ClassificationTask((nn.Module<Tensor, Tensor>)model, data, settings.CnnBatchSize, (long)settings.Seed, evalBatchSize: 500);
                learningRate = settings.CnnLearningRate;
                log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"{network}: Fashion-MNIST, {data.Train.Count} training images, levels measured on the first {data.Test.Count} test images ({data.Source})"));
            }
            else if (network == LevelSetsNetworkSettings.PtbLstm)
            {
                var corpus = LoadPtb(settings);
                (modelOptions, model, task) = LanguageModel(settings, network, corpus, settings.PtbBatchSize, settings.PtbUnroll);
                learningRate = settings.PtbLearningRate;
                clip = 5;
                stepsPerEpoch = Math.Max(1, (corpus.Train.shape[0] / settings.PtbBatchSize - 1) / settings.PtbUnroll);
                log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"{network}: {corpus.Name} (words), vocabulary {corpus.Vocabulary.Count}, {corpus.Train.shape[0]} training words ({stepsPerEpoch} steps an epoch), " +
                    $"levels measured on {corpus.Test.shape[0]} test words ({corpus.Source})"));
            }
            else
            {
                var corpus = TextCorpora.LoadCharacters(settings.Corpus);
                (modelOptions, model, task) = LanguageModel(settings, network, corpus, settings.LstmBatchSize, settings.LstmUnroll);
                learningRate = settings.LstmLearningRate;
                clip = 5;
                log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"{network}: {corpus.Name}, vocabulary {corpus.Vocabulary.Count}, {corpus.Train.shape[0]} training and {corpus.Test.shape[0]} test characters ({corpus.Source})"));
            }
            // The authors' PTB script trains with plain SGD (lr 1.0, clip 5); the others with Adam as theirs.
            optimizerFactory = network == LevelSetsNetworkSettings.PtbLstm
                ? ps => optim.SGD(ps, learningRate)
                : ModuleProblemOptions.Adam(learningRate);
            problem = new ModuleProblem(task, new ModuleProblemOptions
            {
                OptimizerFactory = optimizerFactory, Split = EvaluationSplit.Test, CheckEvery = settings.CheckEvery,
                MaxSteps = settings.BeadMaxSteps, ClipGradNorm = clip,
            });
            parameters = model.parameters().Where(p => p.requires_grad).ToArray();
            runs = Enumerable.Range(0, 2 * settings.Pairs).Select(i => new EndpointRun { Index = i }).ToArray();
        }

        /// <summary>The language model of <paramref name="network"/> on <paramref name="corpus"/>, seeded; the corpus is disposed when this fails.</summary>
        static (ModelOptions Options, nn.Module Model, ITrainingTask Task) LanguageModel(LevelSetsNetworkSettings settings, string network, TokenCorpus corpus,
            int batchSize, int unroll)
        {
            var options = new ModelOptions { VocabularySize = corpus.Vocabulary.Count };
            TorchRuntime.Seed((long)settings.EndpointSeed(network));
            var model = ModelZoo.Create(network, options);
            try
            {
                return (options, model, new LanguageModelTask(model, corpus, batchSize, unroll, CPU, batchSize));
            }
            catch
            {
                model.Dispose();
                corpus.Dispose();
                throw;
            }
        }

        string LevelFile(double level, string suffix) =>
            Path.Combine(piecesDir, string.Create(CultureInfo.InvariantCulture, $"{network}-L{level:R}-{suffix}"));

        string StringCheckpoint(double level, int pair) => LevelFile(level, $"pair{pair}.dss");
        string CurveCheckpoint(double level, int pair) => LevelFile(level, $"pair{pair}.curve");

        public void DeleteLevelCheckpoints(double level)
        {
            for (var p = 0; p < settings.Pairs; p++)
            {
                AtomicFile.TryDelete(StringCheckpoint(level, p));
                AtomicFile.TryDelete(CurveCheckpoint(level, p));
            }
        }

        public LevelSetsLevelResult RunLevel(double level, CancellationToken cancellation)
        {
            var watch = Stopwatch.StartNew();
            var options = settings.SamplingOptions(network, level) with { Cancellation = cancellation };
            var seed = settings.EndpointSeed(network);
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"{network} L0 = {level}: training {runs.Length} endpoints on to α·L0 = {options.BeadTarget:G4} (seeds {seed}..{seed + (ulong)runs.Length - 1}, " +
                $"at most {settings.EndpointMaxSteps} steps from initialisation)"));
            using var scope = NewDisposeScope();
            var endpoints = runs.Select(run => Advance(run, level, options.BeadTarget, cancellation)).ToArray();
            var pairs = new LevelSetsPair[settings.Pairs];
            for (var p = 0; p < settings.Pairs; p++)
            {
                var (a, b) = (endpoints[2 * p], endpoints[2 * p + 1]);
                var pair = new LevelSetsPair
                {
                    Index = p, EndpointLossA = a.Header.Value, EndpointLossB = b.Header.Value, EndpointStepsA = a.Header.Steps, EndpointStepsB = b.Header.Steps,
                };
                if (!a.Header.Reached || !b.Header.Reached)
                {
                    var missed = string.Join(" and ", new[] { (a.Header, "A"), (b.Header, "B") }.Where(e => !e.Item1.Reached)
                        .Select(e => string.Create(CultureInfo.InvariantCulture, $"endpoint {e.Item2} ended at {e.Item1.Value:G4} after {e.Item1.Steps} steps")));
                    pairs[p] = pair with { Skipped = string.Create(CultureInfo.InvariantCulture, $"{missed}, above α·L0 = {options.BeadTarget:G4}") };
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"{network} L0 = {level}: pair {p} skipped: {pairs[p].Skipped}"));
                    continue;
                }
                var pairWatch = Stopwatch.StartNew();
                using (var result = DynamicStringSampling.Run(problem, a.Point, b.Point, options with { CheckpointPath = StringCheckpoint(level, p) }))
                    pair = pair.WithString(result, pairWatch.Elapsed.TotalSeconds);
                log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"{network} L0 = {level}: pair {p} {(pair.Connected ? "joined" : "NOT joined")} by {pair.Beads} beads at depth {pair.Depth}, " +
                    $"length {pair.WeightsOnlyLength:0.0000} (all parameters {pair.AllParametersLength:0.0000}), max along the path {pair.MaxAlongPath:G4} ({pair.Seconds:0.0} s)"));
                if (settings.CurveSteps(network) > 0)
                {
                    pair = pair with { Curve = TrainCurve(a.Point, b.Point, level, p, cancellation) };
                    var c = pair.Curve!;
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                        $"{network} L0 = {level}: pair {p} Bézier curve after {c.Steps} steps: barrier {c.Barrier:G4} (straight line {c.StraightBarrier:G4}), " +
                        $"max {c.MaxAlongCurve:G4}, length {c.NormalizedLength:0.0000} ({c.Seconds:0.0} s)"));
                }
                pairs[p] = pair;
            }
            return new LevelSetsLevelResult
            {
                Key = settings.KeyOf(network), Task = network, Metric = metric, Level = level, EndpointSeed = seed, Pairs = pairs,
                Seconds = Math.Round(watch.Elapsed.TotalSeconds, 3),
            };
        }

        LevelSetsCurve TrainCurve(Tensor a, Tensor b, double level, int pair, CancellationToken cancellation)
        {
            var watch = Stopwatch.StartNew();
            var options = new CurveTrainingOptions
            {
                Kind = CurveKind.Bezier, Bends = 1, Steps = settings.CurveSteps(network), Momentum = 0.9,
                LearningRate = settings.CurveLearningRate(network),
                Seed = unchecked((long)(settings.Seed * 7_919 + (ulong)pair)), EvaluationPoints = settings.CurveEvaluationPoints,
                LengthSteps = settings.CurveLengthSteps,
                CheckpointEvery = (int)Math.Clamp(settings.CurveSteps(network) / 4, 1, 500),
                CheckpointPath = CurveCheckpoint(level, pair), Cancellation = cancellation,
            };
            using var trained = CurveTraining.Train(problem, a, b, options);
            using var straightCurve = ConnectivityCurve.Straight(CurveKind.Bezier, a, b, 1);
            // The straight line's length is 1 by definition: one chord.
            var straight = CurveTraining.Evaluate(problem, straightCurve, settings.CurveEvaluationPoints, lengthSteps: 1);
            return new LevelSetsCurve
            {
                Kind = CurveKind.Bezier, Bends = 1, Steps = trained.Losses.Count,
                Barrier = BarrierOn(trained.Evaluation.Barrier, metric),
                MaxAlongCurve = trained.Evaluation.Max(metric),
                StraightBarrier = BarrierOn(straight.Barrier, metric),
                NormalizedLength = trained.Evaluation.NormalizedLength,
                Seconds = Math.Round(watch.Elapsed.TotalSeconds, 3),
            };
        }

        /// <summary>
        /// Endpoint <paramref name="run"/> at <paramref name="level"/>: its snapshot when one is on disk, else its
        /// training continued (from the deepest snapshot of a higher level, or its initialisation, when it has not
        /// started in this call) until the level metric is at or below <paramref name="target"/> or the step budget is spent.
        /// </summary>
        (LevelSetsNetworkEndpointHeader Header, Tensor Point) Advance(EndpointRun run, double level, double target, CancellationToken cancellation)
        {
            var path = LevelSetsNetworkEndpoint.PathOf(piecesDir, network, run.Index, level);
            if (File.Exists(path))
            {
                var (header, point) = Load(path, run.Index, level);
                Adopt(run, header, point);
                log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                    $"{network} endpoint {run.Index}: {header.Value:G4} after {header.Steps} steps, read from {path}"));
                return (header, point);
            }
            if (!run.Started)
            {
                // Continue from the deepest finished higher level, if an earlier call left its snapshot.
                foreach (var higher in settings.Levels(network).Where(l => l > level).Order())
                {
                    var higherPath = LevelSetsNetworkEndpoint.PathOf(piecesDir, network, run.Index, higher);
                    if (!File.Exists(higherPath)) continue;
                    var (header, point) = Load(higherPath, run.Index, higher);
                    Adopt(run, header, point);
                    point.Dispose();
                    break;
                }
                if (!run.Started)
                {
                    TorchRuntime.Seed(unchecked((long)(settings.EndpointSeed(network) + (ulong)run.Index)));
                    using var fresh = ModelZoo.Create(network, modelOptions);
                    run.SetCurrent(problem.PointOf(fresh, $"endpoint {run.Index}'s initialisation"));
                    run.Value = problem.Measure(run.Current!).Value(metric);
                    run.Steps = 0;
                    run.Started = true;
                }
            }
            var start = run.Steps;
            var exhausted = false;
            while (!(run.Value <= target) && !exhausted)
            {
                if (run.Steps >= settings.EndpointMaxSteps)
                {
                    exhausted = true;
                    break;
                }
                var steps = (int)Math.Min(settings.CheckEvery, settings.EndpointMaxSteps - run.Steps);
                problem.Load(run.Current!);
                run.Optimizer ??= optimizerFactory(parameters);
                if (stepsPerEpoch > 0) SetScheduledRate(run.Optimizer, run.Steps);
                TrainSteps(run.Optimizer, steps, cancellation);
                run.Steps += steps;
                run.SetCurrent(problem.CurrentPoint());
                run.Value = problem.Measure(run.Current!).Value(metric);
            }
            var reached = run.Value <= target;
            var made = new LevelSetsNetworkEndpointHeader(settings.KeyOf(network), network, run.Index, level, run.Steps, run.Value, reached);
            LevelSetsNetworkEndpoint.Write(path, made, run.Current!);
            // The snapshots at higher levels are no longer needed: their pieces are written (levels run downwards).
            foreach (var higher in settings.Levels(network).Where(l => l > level))
                AtomicFile.TryDelete(LevelSetsNetworkEndpoint.PathOf(piecesDir, network, run.Index, higher));
            log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"{network} endpoint {run.Index}: {run.Value:G4} after {run.Steps} steps ({run.Steps - start} now){(reached ? "" : ", target missed: step budget spent")}"));
            return (made, run.Current!.clone());
        }

        (LevelSetsNetworkEndpointHeader Header, Tensor Point) Load(string path, int index, double level)
        {
            var (header, point) = LevelSetsNetworkEndpoint.Read(path);
            try
            {
                LevelSetsNetworkEndpoint.RequireMatch(path, header, settings.KeyOf(network), network, index, level, problem.Dimension, point.shape[0]);
            }
            catch
            {
                point.Dispose();
                throw;
            }
            return (header, point);
        }

        /// <summary>
        /// The PTB script's schedule (Zaremba et al.'s small config): the learning rate halves every epoch after the fourth,
        /// lr · 0.5^max(epoch + 1 − 4, 0) for the 0-based epoch the step falls in. Set per chunk of CheckEvery steps, so a
        /// change takes effect at the first measure after the epoch boundary (ours). Plain SGD keeps no state, so a
        /// resumed endpoint follows the same schedule.
        /// </summary>
        void SetScheduledRate(optim.Optimizer optimizer, long steps)
        {
            var epoch = steps / stepsPerEpoch;
            var rate = learningRate * Math.Pow(0.5, Math.Max(epoch + 1 - 4, 0));
            foreach (var group in optimizer.ParamGroups) group.LearningRate = rate;
        }

        static void Adopt(EndpointRun run, LevelSetsNetworkEndpointHeader header, Tensor point)
        {
            run.SetCurrent(point.clone());
            run.Steps = header.Steps;
            run.Value = header.Value;
            run.Started = true;
            // The Adam state of the run that made the snapshot is not stored: training goes on with a fresh one (ours).
            (run.Optimizer as IDisposable)?.Dispose();
            run.Optimizer = null;
        }

        void TrainSteps(optim.Optimizer optimizer, int steps, CancellationToken cancellation)
        {
            var wasTraining = model.training;
            try
            {
                model.train();
                for (var s = 0; s < steps; s++)
                {
                    cancellation.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    optimizer.zero_grad();
                    var minibatch = task.NextTrainingLoss();
                    if (!double.IsFinite(minibatch.Value))
                        throw new TrainingDivergedException($"{network}: endpoint training diverged: the minibatch loss is {minibatch.Value}");
                    minibatch.Loss.backward();
                    if (clip > 0) nn.utils.clip_grad_norm_(parameters, clip);
                    optimizer.step();
                }
            }
            finally
            {
                foreach (var p in parameters) p.grad = null;
                model.train(wasTraining);
            }
        }

        public void Dispose()
        {
            foreach (var run in runs) run.Dispose();
            problem.Dispose();
            task.Dispose();
            model.Dispose();
        }
    }
}
