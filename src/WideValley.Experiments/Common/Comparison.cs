using WideValley.Data;
using WideValley.Training;

namespace WideValley.Experiments;

/// <summary>What a comparison row measures on the test set.</summary>
public enum ComparisonMetric
{
    /// <summary>Classification error in percent.</summary>
    ErrorPercent,
    /// <summary>Perplexity (exp of the mean cross-entropy per token).</summary>
    Perplexity,
}

/// <summary>One published number: mean +- std over runs, reached after so many effective epochs.</summary>
public sealed record PaperValue(double Mean, double Std, double EffectiveEpochs);

/// <summary>One optimizer of a comparison row at a budget and seed: a name for folders and reports, and the run it is.</summary>
/// <param name="Key">Folder name, e.g. "adam" or "entropy-sgd".</param>
/// <param name="Label">Legend text, e.g. "Entropy-SGD".</param>
/// <param name="IsEntropy">True for the local-entropy arm (Entropy-SGD or Entropy-Adam).</param>
/// <param name="Config">The complete run configuration.</param>
public sealed record ExperimentArm(string Key, string Label, bool IsEntropy, RunConfig Config);

/// <summary>A row of a paper comparison (Table 1, App. C.1): a network, the paper's two numbers for it, and what it reports.</summary>
/// <param name="Name">Row name as the CLI spells it (e.g. mnistfc, lenet).</param>
/// <param name="Title">Row title in reports, as the paper writes it.</param>
/// <param name="Metric">What the row reports.</param>
/// <param name="PaperEntropy">The paper's Entropy-SGD (Entropy-Adam) result.</param>
/// <param name="PaperBaseline">The paper's baseline result (SGD, Adam or SGLD).</param>
/// <param name="PaperData">The dataset the paper used, for the report.</param>
public sealed record ComparisonRow(string Name, string Title, ComparisonMetric Metric, PaperValue PaperEntropy, PaperValue PaperBaseline, string PaperData);

/// <summary>Where a reproduction finds its data; every entry is optional.</summary>
public sealed record ExperimentData
{
    /// <summary>A folder with the real MNIST files; without it, Fashion-MNIST stands in for the MNIST rows.</summary>
    public string? MnistDir { get; init; }
    /// <summary>A Fashion-MNIST folder (default: the usual search, see <see cref="DatasetCatalog.ResolveFolder(string, string?)"/>).</summary>
    public string? FashionMnistDir { get; init; }
    /// <summary>The CIFAR-10 binary folder; the allcnn row is skipped without it.</summary>
    public string? Cifar10Dir { get; init; }
    /// <summary>The Penn Treebank folder (ptb.train.txt, ...); the ptb-lstm row is skipped without it.</summary>
    public string? PtbDir { get; init; }
    /// <summary>A UTF-8 text file for char-lstm; the row is skipped without it.</summary>
    public string? Corpus { get; init; }

    /// <summary>The image dataset the MNIST rows train on.</summary>
    public string MnistRowsDataset => MnistDir is null ? DatasetCatalog.FashionMnist : DatasetCatalog.Mnist;
}

