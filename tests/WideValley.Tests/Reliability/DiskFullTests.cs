using System.Diagnostics;
using System.Text.Json.Nodes;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;

namespace WideValley.Tests.Reliability;

/// <summary>
/// A run folder on a small tmpfs that fills up during training (mounting needs root, as in CI; skipped otherwise):
/// the summary says the run failed and why, the last checkpoint stays intact, and the run resumes once there is room.
/// </summary>
public class DiskFullTests
{
    static bool Mount(string folder, string size)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try
        {
            using var mount = Process.Start(new ProcessStartInfo("mount", ["-t", "tmpfs", "-o", $"size={size}", "tmpfs", folder])
            {
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            })!;
            mount.WaitForExit();
            return mount.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    static void Unmount(string folder)
    {
        using var umount = Process.Start(new ProcessStartInfo("umount", [folder]) { RedirectStandardError = true })!;
        umount.WaitForExit();
    }

    static TrainingResult Train(string folder, int epochs, bool resume, Action<EpochMetrics>? epochCompleted = null)
    {
        var model = Synthetic.Mlp(hidden: 16);
        using var task = new ClassificationTask(model, Synthetic.Blobs(train: 64), 32, seed: 1);
        using var optimizer = OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { LearningRate = 0.05, Momentum = 0.9 });
        var trainer = new Trainer(task, optimizer, new TrainerOptions { Epochs = epochs, OutputDirectory = folder, TensorBoard = false });
        trainer.EpochCompleted = epochCompleted;
        return trainer.Run(resume);
    }

    [Fact]
    public void AFullDiskStopsTheRunWithASummaryThatSaysSoAndTheRunResumesOnceThereIsRoom()
    {
        using var dir = new TempDir();
        var mountPoint = dir.File("small");
        Directory.CreateDirectory(mountPoint);
        if (!Mount(mountPoint, "1m")) Assert.Skip("mounting a tmpfs needs root (CI runs as root)");
        try
        {
            var folder = Path.Combine(mountPoint, "run");
            var filler = Path.Combine(mountPoint, "filler");
            // After epoch 1 is saved, something else fills the disk to the last byte.
            void FillTheDisk(EpochMetrics m)
            {
                if (m.Epoch != 1) return;
                using var stream = new FileStream(filler, FileMode.CreateNew);
                var block = new byte[4096];
                try
                {
                    while (true) { stream.Write(block); stream.Flush(); }
                }
                catch (IOException) { }
            }
            var e = Assert.ThrowsAny<IOException>(() => Train(folder, 3, resume: false, FillTheDisk));
            // The disk fills inside epoch 1's callback, before its summary is rewritten.
            Assert.Contains("training stopped in epoch 1 by an I/O error (", e.Message);
            Assert.Contains("No space left on device", e.Message);
            Assert.Contains($"the checkpoint of the end of epoch 1 is kept in {Path.Combine(folder, Trainer.CheckpointFileName)}", e.Message);
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, Trainer.SummaryFileName)))!;
            Assert.Equal("failed", (string?)summary["status"]);
            Assert.Equal(e.Message, (string?)summary["message"]);
            Assert.Equal(1, Checkpoint.Verify(Path.Combine(folder, Trainer.CheckpointFileName)).CompletedEpochs);

            File.Delete(filler);
            var resumed = Train(folder, 3, resume: true);
            Assert.Equal(TrainingStatus.Completed, resumed.Status);
            Assert.Equal([1, 2, 3], MetricsLog.Read(Path.Combine(folder, "metrics.jsonl")).Select(m => m.Epoch));
            Assert.Equal("finished", (string?)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, Trainer.SummaryFileName)))!["status"]);
            Assert.Empty(Directory.GetFiles(folder, "*.part"));
        }
        finally
        {
            Unmount(mountPoint);
        }
    }
}
