using System.Text.Json;
using System.Text.Json.Nodes;
using WideValley.Experiments;
using WideValley.Landscape;
using static TorchSharp.torch;

namespace WideValley.Cli.Commands;

/// <summary>
/// `hessian --classify`: the critical-point classification (<see cref="CriticalPoints"/>) and the semicircle fit
/// (<see cref="SemicircleFit"/>) of a finished exact or SLQ measurement, with the gradient norm over the same evaluation
/// set, written as classification.json and added to hessian.json (rewritten atomically, still the last file).
/// </summary>
internal static class HessianClassification
{
    /// <summary>The file it writes into the measurement's folder.</summary>
    public const string FileName = "classification.json";

    /// <summary>Classifies <paramref name="measured"/> and returns it with the lines, files and JSON that include the classification.</summary>
    public static HessianFolder Add(HessianFolder measured, nn.Module<Tensor, Tensor> model, IReadOnlyList<(Tensor Inputs, Tensor Labels)> evaluationSet,
        LandscapeOptions options, int? outliers)
    {
        var m = measured.Result;
        double gradientNorm;
        using (var hvp = new Hvp(model, evaluationSet, options))
        {
            var (gradient, _) = hvp.Gradient();
            using (gradient)
            using (var norm = gradient.norm())
                gradientNorm = norm.to(ScalarType.Float64).item<double>();
        }
        var fitOptions = new SemicircleFitOptions { TopOutliers = outliers };
        var classification = m.Method == HessianMethod.Exact
            ? CriticalPoints.FromEigenvalues(m.Eigenvalues ?? throw new InvalidOperationException("--classify: the exact measurement holds no eigenvalues"), gradientNorm)
            : CriticalPoints.FromSlq(m.Quadrature ?? throw new InvalidOperationException("--classify: the SLQ measurement holds no quadrature"), gradientNorm);
        SemicircleFitResult? fit = null;
        string? fitError = null;
        try
        {
            fit = m.Method == HessianMethod.Exact ? SemicircleFit.FromEigenvalues(m.Eigenvalues!, fitOptions) : SemicircleFit.FromSlq(m.Quadrature!, options: fitOptions);
        }
        catch (ArgumentException e)
        {
            fitError = e.Message;
        }
        var node = new JsonObject
        {
            ["point"] = classification.ToJson(),
            ["semicircle"] = fit?.ToJson(),
            ["semicircle_error"] = fitError,
        };
        // Over ranks every rank classifies the same numbers; rank 0 alone writes (HessianFolders.WritesFiles).
        var writes = HessianFolders.WritesFiles(options);
        if (writes) AtomicFile.WriteAllText(Path.Combine(measured.OutDir, FileName), node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        var files = writes ? measured.Files.Where(f => f != "hessian.json").Append(FileName).Append("hessian.json").ToArray() : [];
        var json = JsonNode.Parse(measured.Json)!.AsObject();
        json["classification"] = node.DeepClone();
        if (writes) json["files"] = new JsonArray(files.Select(f => (JsonNode?)JsonValue.Create(f)).ToArray());
        var text = json.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
        if (writes) AtomicFile.WriteAllText(Path.Combine(measured.OutDir, "hessian.json"), text + "\n");
        m.Lines.Add(classification.Describe());
        m.Lines.Add(fit?.Describe() ?? $"semicircle: not fitted ({fitError})");
        return measured with { Json = text, Files = files };
    }
}
