using System.CommandLine;
using WideValley.Data;
using WideValley.Training;

namespace WideValley.Cli.Commands;

/// <summary>
/// `widevalley demo`: a few-minute run that shows the whole pipeline working on this machine: finds (or downloads)
/// Fashion-MNIST, trains the paper's mnistfc with Adam, and prints the test error.
/// </summary>
public static class DemoCommand
{
    public static Command Create(CliContext ctx)
    {
        var epochs = new Option<int>("--epochs") { Description = "Epochs to train (about 13 s each on 2 cores).", DefaultValueFactory = _ => 8 };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = default).", DefaultValueFactory = _ => 0 };
        var dataDir = new Option<string?>("--data-dir") { Description = "Folder with the Fashion-MNIST IDX files." };
        var output = new Option<string?>("--out") { Description = "Run folder (default: runs/demo-TIME)." };
        var command = new Command("demo", "Train mnistfc on Fashion-MNIST with Adam for a few minutes and print the test error.")
        {
            epochs, threads, dataDir, output,
        };
        command.SetAction(p =>
        {
            var folder = LocateData(ctx, p.GetValue(dataDir));
            if (folder is null) return ExitCodes.Failure;
            var config = new RunConfig
            {
                Model = "mnistfc",
                Data = DatasetCatalog.FashionMnist,
                DataDir = folder,
                Optimizer = "adam",
                Lr = 1e-3,
                BatchSize = 128,
                Epochs = p.GetValue(epochs),
                Threads = p.GetValue(threads),
                Seed = 1,
            };
            var outDir = Path.GetFullPath(p.GetValue(output) ?? Path.Combine("runs", $"demo-{DateTime.Now:yyyyMMdd-HHmmss}"));
            ctx.Out.WriteLine($"WideValley demo: mnistfc (784-1024-1024-10, BatchNorm, dropout) trained with Adam on Fashion-MNIST for {config.Epochs} epochs.");
            return TrainCommand.RunAndReport(ctx, config, outDir, resume: false, label: "");
        });
        return command;
    }

    /// <summary>
    /// The Fashion-MNIST folder: the one given, or the usual places, or a fresh checksum-verified download into the
    /// user's data folder. When all fail, prints exactly what to do and returns null.
    /// </summary>
    static string? LocateData(CliContext ctx, string? dataDir)
    {
        try
        {
            return DatasetCatalog.ResolveFolder(DatasetCatalog.FashionMnist, dataDir);
        }
        catch (DataException notFound) when (dataDir is null)
        {
            var target = DatasetCatalog.UserFolder(DatasetCatalog.FashionMnist);
            ctx.Out.WriteLine($"Fashion-MNIST is not installed; downloading it to {target} (checksums verified) ...");
            try
            {
                DatasetDownloader.Download(DatasetCatalog.FashionMnist, target, log: m => ctx.Out.WriteLine("  " + m));
                return DatasetCatalog.ResolveFolder(DatasetCatalog.FashionMnist, target);
            }
            catch (Exception e) when (e is IOException or HttpRequestException or TaskCanceledException or InvalidDataException)
            {
                ctx.Error.WriteLine($"widevalley: the download failed: {e.Message}");
                ctx.Error.WriteLine(notFound.Message);
                ctx.Error.WriteLine("To get the data on Debian or Ubuntu:  sudo apt-get install dataset-fashion-mnist");
                ctx.Error.WriteLine("or put the four IDX files in a folder and run:  widevalley demo --data-dir FOLDER");
                return null;
            }
        }
    }
}
