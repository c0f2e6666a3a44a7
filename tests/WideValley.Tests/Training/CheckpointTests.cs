using TorchSharp;
using WideValley.Optim;
using WideValley.Tests.Support;
using WideValley.Training;
using static TorchSharp.torch;

namespace WideValley.Tests.Training;

public class CheckpointTests
{
    static (ClassificationTask, optim.Optimizer) Build(int hidden = 16)
    {
        var model = Synthetic.Mlp(hidden: hidden);
        var task = new ClassificationTask(model, Synthetic.Blobs(train: 64), 32, seed: 1);
        return (task, OptimizerFactory.Create("sgd", model.parameters(), new SgdOptions { Momentum = 0.9 }));
    }

    static string Write(TempDir dir)
    {
        var (task, opt) = Build();
        using (task)
            new Trainer(task, opt, new TrainerOptions { Epochs = 1, OutputDirectory = dir.Path, ModelName = "mlp16", TensorBoard = false }).Run();
        return dir.File(Trainer.CheckpointFileName);
    }

    [Fact]
    public void TruncatedCheckpointIsReportedAsSuch()
    {
        using var dir = new TempDir();
        var path = Write(dir);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes.AsSpan(0, bytes.Length - 40).ToArray());
        var (task, opt) = Build();
        using (task)
        {
            var e = Assert.Throws<CheckpointDamagedException>(() => Checkpoint.Load(path, task.Model, opt, task));
            Assert.Contains(path, e.Message);
            Assert.Contains("truncated", e.Message);
        }
    }

    [Fact]
    public void CheckpointOfAnotherArchitectureIsRefusedClearly()
    {
        using var dir = new TempDir();
        var path = Write(dir);
        var (task, opt) = Build(hidden: 24);
        using (task)
        {
            var e = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(path, task.Model, opt, task));
            Assert.Contains("do not fit this network", e.Message);
            Assert.Contains("mlp16", e.Message);
        }
    }

    [Fact]
    public void ForeignFilesAreNotMistakenForCheckpoints()
    {
        using var dir = new TempDir();
        var path = dir.File("x.bin");
        File.WriteAllText(path, "hello, this is not a checkpoint");
        var e = Assert.Throws<CheckpointDamagedException>(() => Checkpoint.ReadMeta(path));
        Assert.Contains("not a WideValley checkpoint", e.Message);
    }
}
