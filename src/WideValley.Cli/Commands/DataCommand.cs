using System.CommandLine;
using WideValley.Cli.DemoData;
using WideValley.Data;

namespace WideValley.Cli.Commands;

/// <summary>`widevalley data`: list, locate and download datasets, and write out the built-in Fashion-MNIST subset.</summary>
public static class DataCommand
{
    public static Command Create(CliContext ctx)
    {
        var command = new Command("data", "List, inspect and download datasets.");

        var list = new Command("list", "List the known datasets and where each would be read from.");
        list.SetAction(_ =>
        {
            foreach (var name in DatasetCatalog.Names)
            {
                string where;
                IReadOnlyList<string> skipped;
                try
                {
                    var location = DatasetCatalog.Locate(name, null);
                    (where, skipped) = ($"{location.Folder} (from {location.Origin})", location.SkippedFolders);
                }
                catch (DatasetNotFoundException e)
                {
                    (where, skipped) = ("not found (see 'widevalley data download')", e.IncompleteFolders);
                }
                ctx.Out.WriteLine($"{name,-14} {where}");
                ctx.Out.WriteLine($"{"",-14} {DatasetCatalog.Describe(name)}");
                foreach (var note in skipped) ctx.Out.WriteLine($"{"",-14} skipped {note}");
            }
            ctx.Out.WriteLine($"{"(built-in)",-14} {FashionMnistSubset.Description}: what 'widevalley demo' uses when " +
                              "Fashion-MNIST is not installed; 'widevalley data subset' writes it out");
            ctx.Out.WriteLine($"{"ptb",-14} Penn Treebank words: --data ptb --data-dir DIR with ptb.train.txt, ptb.valid.txt, ptb.test.txt");
            ctx.Out.WriteLine($"{"text",-14} any UTF-8 file as a character corpus: --data text --corpus FILE");
            return ExitCodes.Ok;
        });

        var infoName = new Argument<string>("name") { Description = "Dataset name." };
        var infoDir = new Option<string?>("--data-dir") { Description = "Folder holding the dataset's files." };
        var info = new Command("info", "Load a dataset and print its sizes, shapes and preprocessing.") { infoName, infoDir };
        info.SetAction(p =>
        {
            using var data = DatasetCatalog.LoadClassification(p.GetValue(infoName)!, new DataOptions { DataDir = p.GetValue(infoDir) });
            ctx.Out.WriteLine($"{data.Name}: {data.Train.Count} training and {data.Test.Count} test samples of shape ({string.Join("x", data.SampleShape)}), {data.NumClasses} classes");
            ctx.Out.WriteLine($"source: {data.Source}");
            ctx.Out.WriteLine($"preprocessing: {data.Preprocessing}");
            return ExitCodes.Ok;
        });

        var downloadName = new Argument<string>("name") { Description = "Dataset to download: " + string.Join(", ", DatasetCatalog.Names) };
        var to = new Option<string?>("--to") { Description = "Target folder (default: the user data folder, ~/.local/share/widevalley/NAME)." };
        // A string, not a Uri: System.CommandLine cannot bind Uri ("Cannot parse argument ... as expected type System.Uri").
        var mirror = new Option<string?>("--mirror") { Description = "Base URL to fetch the files from instead of the official one (http or https)." };
        var download = new Command("download", "Download a dataset, verifying every file's MD5 checksum.") { downloadName, to, mirror };
        download.SetAction(p =>
        {
            var name = p.GetValue(downloadName)!;
            var target = Path.GetFullPath(p.GetValue(to) ?? DatasetCatalog.UserFolder(name));
            DatasetDownloader.Download(name, target, MirrorUri(p.GetValue(mirror)), m => ctx.Out.WriteLine(m));
            ctx.Out.WriteLine($"{name} is in {target}");
            return ExitCodes.Ok;
        });

        var subsetTo = new Option<string?>("--to") { Description = "Target folder (default: a folder in the cache, ~/.cache/widevalley)." };
        var subset = new Command("subset",
            "Write the built-in Fashion-MNIST subset (10,000 training and 2,000 test images, MIT licence) to a folder and print it; " +
            "pass that folder to --data-dir to train on it.") { subsetTo };
        subset.SetAction(p =>
        {
            var folder = FashionMnistSubset.Materialize(p.GetValue(subsetTo), m => ctx.Error.WriteLine(m));
            ctx.Out.WriteLine(folder);
            return ExitCodes.Ok;
        });

        command.Add(list);
        command.Add(info);
        command.Add(download);
        command.Add(subset);
        return command;
    }

    static Uri? MirrorUri(string? text)
    {
        if (text is null) return null;
        return Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            ? uri
            : throw new UsageException($"--mirror must be an absolute http or https URL, got '{text}'");
    }
}
