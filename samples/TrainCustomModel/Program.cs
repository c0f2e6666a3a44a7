// Trains your own TorchSharp model with WideValley's Entropy-SGD: a 784-64-10 MLP, your own minibatches over
// Fashion-MNIST, your own loss (cross-entropy with label smoothing). WideValley contributes the optimizer and the IDX
// reader; everything else is plain TorchSharp.
//
//   dotnet run -c Release [-- DATA_FOLDER]
//
// DATA_FOLDER holds Fashion-MNIST's four IDX files; without it, WideValley looks in $WIDEVALLEY_DATA/fashion-mnist,
// ~/.local/share/widevalley/fashion-mnist and Debian's /usr/share/datasets/fashion-mnist (apt-get install
// dataset-fashion-mnist). Exits with code 1 if the model learns nothing (test error above 30%).
using System.Diagnostics;
using TorchSharp;
using WideValley;
using WideValley.Data;
using WideValley.Optim;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

const int TrainImages = 20_000;   // a subset keeps the sample well under a minute
const int BatchSize = 128;
const int Epochs = 3;
const double LabelSmoothing = 0.1;

// Optional and explicit: WideValley changes nothing process-wide unless asked. This is what the widevalley command
// does at start (oneDNN and NNPACK off, glibc malloc tuned for large temporaries); see TorchRuntime.Configure.
TorchRuntime.Configure(TorchRuntimeConfiguration.Recommended with { Threads = Math.Min(Environment.ProcessorCount, 2) });
random.manual_seed(7);

var folder = DatasetCatalog.ResolveFolder(DatasetCatalog.FashionMnist, args.FirstOrDefault());
var (trainX, trainY) = LoadImages(folder, "train", TrainImages);
var (testX, testY) = LoadImages(folder, "t10k", int.MaxValue);
Console.WriteLine($"Fashion-MNIST from {folder}: {trainX.shape[0]} training and {testX.shape[0]} test images");

using var model = nn.Sequential(
    ("fc1", nn.Linear(784, 64)),
    ("relu", nn.ReLU()),
    ("fc2", nn.Linear(64, 10)));

// Entropy-SGD: every step runs L Langevin steps, each on a fresh minibatch drawn by the closure, then an SGD step
// (Nesterov momentum) along the local-entropy gradient. Settings as the paper's mnistfc run, with L = 5.
var localEntropy = new LocalEntropyOptions { L = 5, LangevinLr = 0.1, Noise = 1e-3, Seed = 7 };
using var optimizer = new EntropySgd(model.parameters(), lr: 1.0, localEntropy, momentum: 0.9, nesterov: true);

var batches = new Minibatches(trainX, trainY, BatchSize, seed: 11);
var stepsPerEpoch = (int)(trainX.shape[0] / BatchSize / localEntropy.L); // equal cost: L gradients per step
var clock = Stopwatch.StartNew();
double error = 1;
for (var epoch = 1; epoch <= Epochs; epoch++)
{
    model.train();
    double lossSum = 0;
    for (var step = 0; step < stepsPerEpoch; step++)
    {
        using var scope = NewDisposeScope();
        var loss = optimizer.step(() =>
        {
            optimizer.zero_grad();
            var (x, y) = batches.Next();
            var l = SmoothedCrossEntropy(model.call(x), y, LabelSmoothing);
            l.backward();
            return l;
        });
        lossSum += loss.item<float>();
    }
    error = TestError(model, testX, testY);
    Console.WriteLine($"epoch {epoch}: mean training loss {lossSum / stepsPerEpoch:F4}, test error {100 * error:F2}% " +
                      $"({clock.Elapsed.TotalSeconds:F1} s, {epoch * stepsPerEpoch * localEntropy.L} gradient evaluations)");
}
Console.WriteLine($"test error {100 * error:F2}%");
return error < 0.30 ? 0 : 1;

// Your loss: cross-entropy against targets smoothed towards the uniform distribution.
static Tensor SmoothedCrossEntropy(Tensor logits, Tensor labels, double smoothing)
{
    var logProbabilities = F.log_softmax(logits, 1);
    var nll = -logProbabilities.gather(1, labels.unsqueeze(1)).squeeze(1);
    var uniform = -logProbabilities.mean([1]);
    return ((1 - smoothing) * nll + smoothing * uniform).mean();
}

static double TestError(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y)
{
    using var scope = NewDisposeScope();
    using var noGrad = no_grad();
    model.eval();
    var wrong = model.call(x).argmax(1).ne(y).sum().item<long>();
    return (double)wrong / x.shape[0];
}

// Images as float32 rows in [0, 1], labels as int64; the IDX reader accepts plain and gzip-compressed files.
static (Tensor Images, Tensor Labels) LoadImages(string folder, string split, int limit)
{
    var images = Idx.ReadTensor(FindFile(folder, $"{split}-images"));
    var labels = Idx.ReadTensor(FindFile(folder, $"{split}-labels"));
    var n = Math.Min(limit, images.shape[0]);
    var x = images.narrow(0, 0, n).reshape(n, 784).to(ScalarType.Float32).div_(255f);
    return (x, labels.narrow(0, 0, n).to(ScalarType.Int64));
}

static string FindFile(string folder, string prefix) =>
    Directory.EnumerateFiles(folder).Where(f => Path.GetFileName(f).StartsWith(prefix, StringComparison.Ordinal))
        .Order(StringComparer.Ordinal).FirstOrDefault()
    ?? throw new FileNotFoundException($"{folder} has no file starting with {prefix}");

/// <summary>Your batching: a fresh random permutation every pass over the data, one minibatch per call.</summary>
sealed class Minibatches(Tensor x, Tensor y, int batchSize, long seed)
{
    readonly Generator generator = new((ulong)seed);
    Tensor order = empty(0, dtype: ScalarType.Int64);
    long position;

    public (Tensor X, Tensor Y) Next()
    {
        if (position + batchSize > order.shape[0])
        {
            order.Dispose();
            order = randperm(x.shape[0], generator: generator).DetachFromDisposeScope();
            position = 0;
        }
        var index = order.narrow(0, position, batchSize);
        position += batchSize;
        return (x.index_select(0, index), y.index_select(0, index));
    }
}
