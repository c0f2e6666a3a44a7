using WideValley.Training;

namespace WideValley.Tests.Training;

public class LearningRateScheduleTests
{
    [Fact]
    public void StepDecayDividesEveryNEpochs()
    {
        var s = LearningRateSchedule.Parse("step:5:30"); // the paper's Adam baseline
        Assert.Equal(1.0, s.Factor(1));
        Assert.Equal(1.0, s.Factor(30));
        Assert.Equal(0.2, s.Factor(31), 12);
        Assert.Equal(0.04, s.Factor(61), 12);
    }

    [Fact]
    public void DivideAfterListedEpochs()
    {
        var mnist = LearningRateSchedule.Parse("after:10:2"); // Entropy-SGD mnistfc: /10 after epoch 2
        Assert.Equal(new[] { 1.0, 1.0, 0.1, 0.1 }, Enumerable.Range(1, 4).Select(mnist.Factor).Select(f => Math.Round(f, 12)));
        var ptb = LearningRateSchedule.Parse("after:10:3,4"); // PTB: /10 each epoch after the 3rd
        Assert.Equal(new[] { 1.0, 1.0, 1.0, 0.1, 0.01 }, Enumerable.Range(1, 5).Select(ptb.Factor).Select(f => Math.Round(f, 12)));
    }

    [Fact]
    public void CustomIsPiecewiseConstant()
    {
        var s = LearningRateSchedule.Parse("custom:3=0.5,5=0.1");
        Assert.Equal(new[] { 1.0, 1.0, 0.5, 0.5, 0.1, 0.1 }, Enumerable.Range(1, 6).Select(s.Factor));
    }

    [Theory]
    [InlineData("const")]
    [InlineData("step:2:1")]
    [InlineData("after:10:2,5")]
    [InlineData("custom:1=1,4=0.25")]
    public void SpecRoundTrips(string spec) => Assert.Equal(spec, LearningRateSchedule.Parse(spec).Spec);

    [Theory]
    [InlineData("step:0:3", "K = '0'")]
    [InlineData("step:5:0", "N = '0'")]
    [InlineData("after:10:x", "epoch 'x'")]
    [InlineData("custom:2", "'2' is not EPOCH=FACTOR")]
    [InlineData("custom:2=0.1,2=0.5", "given twice")]
    [InlineData("cosine", "unknown form")]
    public void BadSpecsSayWhatIsWrong(string spec, string expected)
    {
        var e = Assert.Throws<FormatException>(() => LearningRateSchedule.Parse(spec));
        Assert.Contains(expected, e.Message);
        Assert.Contains(spec, e.Message);
    }
}
