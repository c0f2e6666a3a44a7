using System.CommandLine;
using WideValley.Experiments;

namespace WideValley.Cli.Commands.Reproduce;

/// <summary>
/// `widevalley reproduce table1`: parses the options into the library's <see cref="Table1.Comparison"/> (every (row,
/// optimizer, seed) of Table 1 in its own run folder, trained unless it has finished, then the report), which
/// <see cref="ComparisonCommand"/> runs and prints.
/// </summary>
public static class Table1Command
{
    public static Command Create(CliContext ctx)
    {
        var rows = new Option<string>("--rows") { Description = $"Comma-separated rows: {string.Join(", ", Table1.RowNames)}.", DefaultValueFactory = _ => string.Join(",", Table1.RowNames) };
        var common = new ComparisonOptions(5, "Independent runs per optimizer and row (the paper: 5).");
        var cifarDir = new Option<string?>("--cifar10-dir") { Description = "CIFAR-10 binary folder; without it the allcnn row is skipped." };
        var ptbDir = new Option<string?>("--ptb-dir") { Description = "Penn Treebank folder; without it the ptb-lstm row is skipped." };
        var corpus = new Option<string?>("--corpus") { Description = "UTF-8 text for char-lstm (e.g. /usr/share/games/fortunes/fortunes); without it the row is skipped." };
        var command = new Command("table1",
            "Table 1: Entropy-SGD against SGD / Adam on mnistfc, LeNet, All-CNN-BN, PTB-LSTM and char-LSTM with the paper's settings; " +
            "resumable; writes table1-DATASET[-BUDGET].md/.json and one plot per row.")
        {
            rows, cifarDir, ptbDir, corpus,
        };
        foreach (var option in common.All) command.Add(option);
        command.SetAction(p =>
        {
            var selected = Table1.ParseRows(p.GetValue(rows)!);
            var s = common.Read(p);
            var b = s.Budget;
            var data = new ExperimentData
            {
                MnistDir = s.MnistDir,
                FashionMnistDir = s.FashionMnistDir,
                Cifar10Dir = ReproduceOptions.ExistingFolder(p.GetValue(cifarDir), "--cifar10-dir"),
                PtbDir = ReproduceOptions.ExistingFolder(p.GetValue(ptbDir), "--ptb-dir"),
                Corpus = ReproduceOptions.ExistingFile(p.GetValue(corpus), "--corpus"),
            };
            return ComparisonCommand.Execute(ctx, Table1.Comparison(selected, s.ToRunSettings(data, CommandLine(selected, s.Seeds, s.FirstSeed, b, data))));
        });
        return command;
    }

    /// <summary>The command that reproduces the report (without machine-specific options).</summary>
    static string CommandLine(IReadOnlyList<ComparisonRow> rows, int seeds, long firstSeed, Budget budget, ExperimentData data)
    {
        var parts = new List<string>
        {
            "widevalley reproduce table1", $"--rows {string.Join(",", rows.Select(r => r.Name))}", $"--seeds {seeds}", $"--budget {Budgets.Name(budget)}",
        };
        if (firstSeed != 1) parts.Add($"--first-seed {firstSeed}");
        if (data.MnistDir is not null) parts.Add("--mnist-dir MNIST_DIR");
        if (data.Cifar10Dir is not null) parts.Add("--cifar10-dir CIFAR10_DIR");
        if (data.PtbDir is not null) parts.Add("--ptb-dir PTB_DIR");
        if (data.Corpus is not null) parts.Add($"--corpus {data.Corpus}");
        return string.Join(" ", parts);
    }
}
