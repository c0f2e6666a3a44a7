using TorchSharp;
using static TorchSharp.torch;

namespace WideValley.Models;

/// <summary>
/// M independent one-hidden-layer ReLU classifiers (inputs -&gt; hidden -&gt; outputs, softmax cross-entropy) held as
/// one set of batched tensors and trained together: a forward pass is two batched matrix products (torch.bmm)
/// over all M networks, so training 1,000 small networks costs a handful of large kernels per step instead of 1,000
/// small ones. The loss minimised is the sum over networks of each network's own mean loss, so every network's
/// gradient is exactly what it would be if it were trained alone, and <see cref="SgdStep"/> is plain SGD on each.
/// Network i is the module <c>Linear(inputs, hidden) -&gt; ReLU -&gt; Linear(hidden, outputs)</c> with weights
/// W1[i]^T, B1[i], W2[i]^T, B2[i] (<see cref="ExtractNetwork"/>).
/// </summary>
public sealed class BatchedOneHiddenLayer : IDisposable
{
    /// <summary>Creates M networks with all parameters zero (call <see cref="InitializeUniform"/> or <see cref="SetNetwork"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A non-positive count or size.</exception>
    public BatchedOneHiddenLayer(int networks, int inputs, int hidden, int outputs, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(networks);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(inputs);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(hidden);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputs, 2);
        if (dtype is not (ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"BatchedOneHiddenLayer: dtype must be Float32 or Float64, got {dtype}", nameof(dtype));
        Networks = networks;
        Inputs = inputs;
        Hidden = hidden;
        Outputs = outputs;
        Dtype = dtype;
        Device = device ?? CPU;
        W1 = zeros([networks, inputs, hidden], dtype, Device).requires_grad_(true);
        B1 = zeros([networks, 1, hidden], dtype, Device).requires_grad_(true);
        W2 = zeros([networks, hidden, outputs], dtype, Device).requires_grad_(true);
        B2 = zeros([networks, 1, outputs], dtype, Device).requires_grad_(true);
    }

    /// <summary>M, the number of networks.</summary>
    public int Networks { get; }
    /// <summary>Inputs per sample (100 for a 10x10 image).</summary>
    public int Inputs { get; }
    /// <summary>Hidden units per network (n1).</summary>
    public int Hidden { get; }
    /// <summary>Classes.</summary>
    public int Outputs { get; }
    /// <summary>The floating type of the parameters.</summary>
    public ScalarType Dtype { get; }
    /// <summary>Where the parameters live.</summary>
    public Device Device { get; }

    /// <summary>First-layer weights, [M, inputs, hidden] (network i's Linear weight transposed).</summary>
    public Tensor W1 { get; }
    /// <summary>First-layer biases, [M, 1, hidden].</summary>
    public Tensor B1 { get; }
    /// <summary>Second-layer weights, [M, hidden, outputs].</summary>
    public Tensor W2 { get; }
    /// <summary>Second-layer biases, [M, 1, outputs].</summary>
    public Tensor B2 { get; }

    /// <summary>The four parameter tensors, in the order W1, B1, W2, B2.</summary>
    public IReadOnlyList<Tensor> Parameters => [W1, B1, W2, B2];

    /// <summary>Parameters of one network: inputs·hidden + hidden + hidden·outputs + outputs.</summary>
    public long ParametersPerNetwork => (long)Inputs * Hidden + Hidden + (long)Hidden * Outputs + Outputs;

    /// <summary>
    /// Draws every weight and bias of network i uniformly from [low, high] / sqrt(fan_in) of its layer, from a
    /// generator seeded with <paramref name="seeds"/>[i] alone, so a network's start depends on its seed and nothing
    /// else (not on M or on its place in the batch). With low = -1, high = 1 this is PyTorch's default Linear init.
    /// </summary>
    /// <exception cref="ArgumentException">Not one seed per network, or an empty or non-finite range.</exception>
    public void InitializeUniform(IReadOnlyList<long> seeds, double low, double high)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        if (seeds.Count != Networks) throw new ArgumentException($"InitializeUniform: expected {Networks} seeds (one per network), got {seeds.Count}", nameof(seeds));
        if (!(double.IsFinite(low) && double.IsFinite(high) && high > low))
            throw new ArgumentException($"InitializeUniform: the range [{low}, {high}] must be finite and non-empty");
        using var _ = no_grad();
        for (var i = 0; i < Networks; i++)
        {
            using var scope = NewDisposeScope();
            using var g = new Generator((ulong)seeds[i]);
            Fill(W1[i], g, low, high, Inputs);
            Fill(B1[i], g, low, high, Inputs);
            Fill(W2[i], g, low, high, Hidden);
            Fill(B2[i], g, low, high, Hidden);
        }
    }

    static void Fill(Tensor target, Generator g, double low, double high, int fanIn)
    {
        var scale = 1 / Math.Sqrt(fanIn);
        using var u = rand(target.shape, ScalarType.Float64, generator: g);
        // low + (high - low) u, scaled; drawn in float64 so float32 and float64 models start at the same point.
        u.Scale_((high - low) * scale).Shift_(low * scale);
        target.copy_(u);
    }

    /// <summary>
    /// Logits [M, B, outputs] for inputs [M, B, inputs] (each network its own minibatch) or [B, inputs] (one set for all).
    /// </summary>
    /// <exception cref="ArgumentException">Inputs of the wrong shape.</exception>
    public Tensor Forward(Tensor x)
    {
        if (x.dim() == 2)
        {
            if (x.shape[1] != Inputs) throw new ArgumentException($"BatchedOneHiddenLayer.Forward: expected [B, {Inputs}] inputs, got [{string.Join(", ", x.shape)}]");
            // One input set for all networks: the first layer of all M networks is one matrix product
            // [B, in] x [in, M h], far faster than M small ones (and its weight gradient is one product too).
            var b = x.shape[0];
            using var wide = W1.permute(1, 0, 2).reshape(Inputs, (long)Networks * Hidden);
            using var product = x.mm(wide);
            using var h = product.view(b, Networks, Hidden).transpose(0, 1).add(B1, Held.One).relu_();
            return bmm(h, W2).add_(B2, Held.One);
        }
        if (x.dim() != 3 || x.shape[0] != Networks || x.shape[2] != Inputs)
            throw new ArgumentException($"BatchedOneHiddenLayer.Forward: expected [{Networks}, B, {Inputs}] or [B, {Inputs}] inputs, got [{string.Join(", ", x.shape)}]");
        using var hidden = bmm(x, W1).add_(B1, Held.One).relu_();
        return bmm(hidden, W2).add_(B2, Held.One);
    }

    /// <summary>Each network's mean cross-entropy, [M], for inputs as in <see cref="Forward"/> and labels [M, B] or [B].</summary>
    public Tensor Losses(Tensor x, Tensor labels)
    {
        using var logits = Forward(x);
        var b = logits.shape[1];
        using var flatLabels = labels.dim() == 1 ? labels.unsqueeze(0).expand(Networks, b).reshape(-1) : labels.reshape(-1);
        using var flat = logits.reshape(-1, Outputs);
        using var each = nn.functional.cross_entropy(flat, flatLabels, reduction: nn.Reduction.None);
        return each.view(Networks, b).mean([1]);
    }

    /// <summary>
    /// One SGD step of every network on its own minibatch (inputs [M, B, inputs], labels [M, B]) or all on the same one
    /// (inputs [B, inputs], labels [B]): the gradient of
    /// sum_i loss_i, which for network i is the gradient of its own mean loss, then p -= lr * grad. Returns the
    /// networks' minibatch losses [M] (detached).
    /// </summary>
    public Tensor SgdStep(Tensor x, Tensor labels, double lr)
    {
        using var losses = Losses(x, labels);
        using (var total = losses.sum()) total.backward();
        using (no_grad())
        {
            foreach (var p in Parameters)
            {
                using var grad = p.grad!;
                p.AddScaled_(grad, -lr);
                grad.zero_();
            }
        }
        return losses.detach();
    }

    /// <summary>
    /// One epoch: network i visits the N samples in the order <paramref name="orders"/>[i] ([M, N] indices into
    /// <paramref name="inputs"/> [N, inputs] and <paramref name="labels"/> [N]), or all networks in the one order
    /// <paramref name="orders"/> ([N]; then the first layer of all networks is one large matrix product), in
    /// minibatches of <paramref name="batchSize"/> (the last one smaller when B does not divide N). Returns the mean
    /// minibatch loss of each network over the epoch.
    /// </summary>
    /// <exception cref="ArgumentException">Orders of the wrong shape or a non-positive batch size.</exception>
    public double[] TrainEpoch(Tensor inputs, Tensor labels, Tensor orders, int batchSize, double lr)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var n = inputs.shape[0];
        var shared = orders.dim() == 1;
        if (shared ? orders.shape[0] != n : orders.dim() != 2 || orders.shape[0] != Networks || orders.shape[1] != n)
            throw new ArgumentException($"TrainEpoch: orders must be [{Networks}, {n}] (one per network) or [{n}] (shared), got [{string.Join(", ", orders.shape)}]");
        using var sum = zeros(Networks, ScalarType.Float64);
        var steps = 0;
        for (long start = 0; start < n; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var b = Math.Min(batchSize, n - start);
            var index = shared ? orders.narrow(0, start, b) : orders.narrow(1, start, b).reshape(-1);
            var x = shared ? inputs.index_select(0, index) : inputs.index_select(0, index).view(Networks, b, Inputs);
            var y = shared ? labels.index_select(0, index) : labels.index_select(0, index).view(Networks, b);
            var losses = SgdStep(x, y, lr);
            sum.Accumulate_(losses.to(ScalarType.Float64));
            steps++;
        }
        using var mean = sum.DividedBy(steps);
        return mean.data<double>().ToArray();
    }

    /// <summary>
    /// Each network's mean cross-entropy and error rate over the whole set (inputs [N, inputs], labels [N]), in
    /// batches of <paramref name="batchSize"/>, without gradients; accumulated in float64.
    /// </summary>
    public (double[] Loss, double[] Error) Evaluate(Tensor inputs, Tensor labels, int batchSize = 1000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        using var _ = no_grad();
        var n = inputs.shape[0];
        using var lossSum = zeros(Networks, ScalarType.Float64);
        using var wrong = zeros(Networks, ScalarType.Float64);
        for (long start = 0; start < n; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var b = Math.Min(batchSize, n - start);
            var x = inputs.narrow(0, start, b);
            var y = labels.narrow(0, start, b);
            var logits = Forward(x);
            var each = nn.functional.cross_entropy(logits.reshape(-1, Outputs), y.unsqueeze(0).expand(Networks, b).reshape(-1), reduction: nn.Reduction.None);
            lossSum.Accumulate_(each.view(Networks, b).to(ScalarType.Float64).sum([1]));
            var predicted = logits.argmax(2);
            wrong.Accumulate_(predicted.ne(y.unsqueeze(0)).to(ScalarType.Float64).sum([1]));
        }
        using var loss = lossSum.DividedBy(n);
        using var error = wrong.DividedBy(n);
        return (loss.data<double>().ToArray(), error.data<double>().ToArray());
    }

    /// <summary>
    /// Network <paramref name="index"/> as a standalone module Sequential(fc1 = Linear(inputs, hidden), relu,
    /// fc2 = Linear(hidden, outputs)) holding a copy of its parameters in <paramref name="dtype"/>: what the landscape
    /// tools (Hvp, ExactHessian) take. The batch is not changed by anything done to the copy.
    /// </summary>
    public nn.Module<Tensor, Tensor> ExtractNetwork(int index, ScalarType dtype = ScalarType.Float64)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Networks);
        var fc1 = nn.Linear(Inputs, Hidden, dtype: dtype);
        var fc2 = nn.Linear(Hidden, Outputs, dtype: dtype);
        using (no_grad())
        {
            fc1.weight!.copy_(W1[index].t());
            fc1.bias!.copy_(B1[index].squeeze(0));
            fc2.weight!.copy_(W2[index].t());
            fc2.bias!.copy_(B2[index].squeeze(0));
        }
        return nn.Sequential(("fc1", fc1), ("relu", nn.ReLU()), ("fc2", fc2));
    }

    /// <summary>Copies the parameters of a module built like <see cref="ExtractNetwork"/>'s into network <paramref name="index"/>.</summary>
    /// <exception cref="ArgumentException">The module has other parameter shapes.</exception>
    public void SetNetwork(int index, nn.Module<Tensor, Tensor> network)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Networks);
        var p = network.parameters().ToArray();
        if (p.Length != 4 || !p[0].shape.SequenceEqual([Hidden, Inputs]) || !p[1].shape.SequenceEqual([Hidden])
            || !p[2].shape.SequenceEqual([Outputs, Hidden]) || !p[3].shape.SequenceEqual([Outputs]))
            throw new ArgumentException($"SetNetwork: expected Linear({Inputs}, {Hidden}), ReLU, Linear({Hidden}, {Outputs}) parameters");
        using var _ = no_grad();
        W1[index].copy_(p[0].t());
        B1[index].copy_(p[1].unsqueeze(0));
        W2[index].copy_(p[2].t());
        B2[index].copy_(p[3].unsqueeze(0));
    }

    /// <summary>Frees the parameter tensors.</summary>
    public void Dispose()
    {
        foreach (var p in Parameters)
        {
            p.grad?.Dispose();
            p.Dispose();
        }
    }

    /// <summary>Scalars held for the process (see <see cref="TorchScalars"/>): the alpha of 1 for the broadcast bias add.</summary>
    static class Held
    {
        internal static readonly Scalar One = 1L.ToScalar();
    }
}
