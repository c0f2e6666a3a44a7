// Measures the loss landscape of YOUR model with YOUR loss: a 784-64-10 MLP written here (not from WideValley's zoo),
// trained a little with plain Adam on a synthetic ten-class problem, under a label-smoothing cross-entropy. The
// measurements go through WideValley's one-object entry point, HessianAnalysis: the top Hessian eigenvalues (Lanczos),
// the trace (Hutchinson), the eigenvalue density (stochastic Lanczos quadrature) and a 1-D slice along a random
// filter-normalised direction. Runs in a few seconds on a laptop CPU.
using System.Diagnostics;
using TorchSharp;
using WideValley.Landscape;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

const int Classes = 10;
const int Features = 784;
const int Samples = 1000;
const double Smoothing = 0.1;

random.manual_seed(7);
var watch = Stopwatch.StartNew();

// Your data: ten Gaussian clusters in 784 dimensions (swap in your own tensors; any batching works).
var prototypes = randn(Classes, Features).mul(0.5);
var labels = randint(0, Classes, [Samples], dtype: ScalarType.Int64);
var inputs = prototypes.index_select(0, labels).add(randn(Samples, Features));
var batches = new List<(Tensor Inputs, Tensor Labels)>();
for (var start = 0; start < Samples; start += 250)
    batches.Add((inputs.narrow(0, start, 250), labels.narrow(0, start, 250)));

// Your loss: the mean over the batch, from (model output, labels).
Tensor LabelSmoothing(Tensor logits, Tensor target) => F.cross_entropy(logits, target, label_smoothing: Smoothing);

// Your model, trained a little.
using var model = new Mlp(Features, 64, Classes);
using (var optimizer = optim.Adam(model.parameters(), lr: 1e-3))
{
    for (var epoch = 0; epoch < 3; epoch++)
    {
        foreach (var (x, y) in batches)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            LabelSmoothing(model.call(x), y).backward();
            optimizer.step();
        }
    }
}

// The measurements. LossName is what the loss computes: it keys resumable exact-Hessian checkpoints.
using var h = new HessianAnalysis(model, batches, LabelSmoothing, new LandscapeOptions { LossName = $"label-smoothing-{Smoothing}" });
Console.WriteLine($"model: 784-64-10 MLP, n = {h.Dimension:N0} parameters, {Samples} samples, loss: cross-entropy with label smoothing {Smoothing}");

var top = h.TopEigenvalues(5);
Console.WriteLine($"top eigenvalues: {string.Join(", ", top.Eigenvalues.Select(v => v.ToString("G5")))} " +
                  $"({top.OperatorApplications} Hessian-vector products, converged: {top.Converged})");

var trace = h.Trace(new HutchinsonOptions { Probes = 60, HutchPlusPlus = true });
Console.WriteLine($"trace: {trace.Total.Trace:G5} ± {trace.Total.StandardError:G2} ({trace.Method})");
foreach (var layer in trace.Layers)
    Console.WriteLine($"  {layer.Name,-6} {layer.Count,7:N0} parameters  trace {layer.Trace:G5}");

var slq = h.Density(new SlqOptions { Probes = 4, Steps = 40 });
var density = slq.Density(points: 400);
var peak = density.Grid[Array.IndexOf(density.Density, density.Density.Max())];
Console.WriteLine($"density: eigenvalues in [{slq.Range.Min:G4}, {slq.Range.Max:G4}], peak at {peak:G3}, " +
                  $"{100 * slq.FractionAbsBelow(1e-3):0.0}% with |lambda| < 1e-3");

var slice = h.Slice(options: new SliceOptions { Points = 11, From = -1, To = 1, Seed = 1 });
Console.WriteLine("slice along a random filter-normalised direction:");
foreach (var p in slice) Console.WriteLine($"  alpha {p.Alpha,5:0.0}  loss {p.Loss:0.0000}  error {p.ErrorPercent:0.0}%");

Console.WriteLine($"done in {watch.Elapsed.TotalSeconds:0.0} s ({h.Applications} operator applications)");

/// <summary>A plain TorchSharp MLP, as a user writes it.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Linear hidden;
    private readonly TorchSharp.Modules.Linear output;

    public Mlp(int inputs, int width, int classes) : base(nameof(Mlp))
    {
        hidden = nn.Linear(inputs, width);
        output = nn.Linear(width, classes);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return output.call(F.relu(hidden.call(x))).MoveToOuterDisposeScope();
    }
}
