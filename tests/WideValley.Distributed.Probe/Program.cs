using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using WideValley.Distributed;
using static TorchSharp.torch;

// Runs the collectives on inputs whose results have closed forms and prints one line "probe {json}" per check; the
// tests (tests/WideValley.Tests/Distributed/MpiLaunchTests.cs) parse the lines of every rank and verify them.
//
//   WideValley.Distributed.Probe [--mpi] [--marker-dir DIR] [--crash-rank R] [--timing]
//
// --mpi          MPI even without a launcher (singleton MPI_Init); otherwise Collectives.Create() decides.
// --marker-dir   where rank 1 leaves a file just before the barrier, which rank 0 looks for just after it.
// --crash-rank   that rank dies of an unhandled exception while the others wait in a barrier (the job must end).
// --leave-open   start, meet at a barrier and return without disposing the collectives.
// --timing       also times in-place allreduces of 1M elements (sanity numbers, not a benchmark).

var useMpi = args.Contains("--mpi");
var standardOutput = Console.OpenStandardOutput();
var timing = args.Contains("--timing");
string? markerDir = Option("--marker-dir");
int? crashRank = Option("--crash-rank") is { } c ? int.Parse(c) : null;

set_num_threads(1);
ICollectives created;
try { created = useMpi ? MpiCollectives.Initialize() : Collectives.Create(); }
catch (MpiLibraryNotFoundException e)
{
    Console.Error.WriteLine($"probe: {nameof(MpiLibraryNotFoundException)}: {e.Message}");
    return 2;
}
var collectives = created;
var (rank, size) = (collectives.Rank, collectives.Size);

var mpi = collectives as MpiCollectives;
Emit(new JsonObject
{
    ["check"] = "start",
    ["implementation"] = collectives.GetType().Name,
    ["abi"] = mpi?.Abi.ToString(),
    ["library"] = mpi?.Library,
    ["thread_level"] = mpi?.ThreadLevel,
    ["description"] = collectives.Description,
});

if (args.Contains("--leave-open"))
{
    // Never disposed: MPI must be finalised by the process-exit hook, or mpirun reports a rank that exited without it.
    collectives.Barrier();
    Emit(new JsonObject { ["check"] = "left-open" });
    return 0;
}
using var disposeAtTheEnd = collectives;
if (args.Contains("--landscape")) return WideValley.Distributed.Probe.LandscapeChecks.Run(collectives, args, Emit);

if (crashRank is { } dying)
{
    if (rank == dying) throw new InvalidOperationException($"probe: deliberate crash of rank {rank}");
    collectives.Barrier(); // never returns: rank `dying` is gone, and its unhandled exception aborts the job
    Emit(new JsonObject { ["check"] = "crash-survived" });
    return 0;
}

foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64 })
{
    foreach (var n in new long[] { 1, 7, 1000, 1_000_000 })
    {
        AllReduce(dtype, n, average: false);
        AllReduce(dtype, n, average: true);
    }
    OffsetView(dtype);
    if (mpi is not null) Split(mpi, dtype);
    for (var root = 0; root < Math.Min(size, 2); root++) Broadcast(dtype, 1000, root);
    FlatAverage(dtype);
}
if (mpi is not null) MpiError(mpi);
Barrier();
LongRecords();
if (timing) Timing();
Emit(new JsonObject { ["check"] = "done" });
return 0;

// Rank r holds v(r, i) = (r + 1) / 2 + (i mod 13): every sum and mean over two ranks is exact in float32.
static Tensor Values(int rank, long n, ScalarType dtype)
{
    using var i = arange(n, dtype: ScalarType.Float64);
    using var k = i.remainder(13);
    using var v = k.add((rank + 1) * 0.5);
    return v.to(dtype);
}

void AllReduce(ScalarType dtype, long n, bool average)
{
    using var scope = NewDisposeScope();
    var t = Values(rank, n, dtype);
    if (average) collectives.AllReduceAverage(t); else collectives.AllReduceSum(t);
    // Sum over ranks of v(r, i) = S (S + 1) / 4 + S (i mod 13); the mean divides by S.
    var expected = ExpectedSum(n, average);
    Report(average ? "allreduce-average" : "allreduce-sum", dtype, n, t, expected);
}

Tensor ExpectedSum(long n, bool average)
{
    using var i = arange(n, dtype: ScalarType.Float64);
    using var k = i.remainder(13);
    using var sum = k.mul(size).add(size * (size + 1) / 4.0);
    return average ? sum.div(size) : sum.clone();
}

// A view with a non-zero storage offset: only its 1000 elements may change, the guards around it must not.
void OffsetView(ScalarType dtype)
{
    using var scope = NewDisposeScope();
    var storage = full(1100, -7.0, dtype: dtype);
    var view = storage.narrow(0, 37, 1000);
    using (var v = Values(rank, 1000, dtype)) view.copy_(v);
    collectives.AllReduceSum(view);
    var guards = cat([storage.narrow(0, 0, 37), storage.narrow(0, 1037, 63)]);
    var intact = guards.eq(-7.0).all().item<bool>();
    Report("allreduce-sum-offset-view", dtype, 1000, view, ExpectedSum(1000, false),
        new JsonObject { ["storage_offset"] = view.storage_offset(), ["guards_intact"] = intact });
}

// The int-count splitting, on a small buffer: 1000 elements in calls of at most 300.
void Split(MpiCollectives m, ScalarType dtype)
{
    using var scope = NewDisposeScope();
    var t = Values(rank, 1000, dtype);
    var b = Values(rank, 1000, dtype);
    m.MaxElementsPerCall = 300;
    try
    {
        m.AllReduceSum(t);
        m.Broadcast(b, size - 1);
    }
    finally { m.MaxElementsPerCall = int.MaxValue; }
    Report("allreduce-sum-split-300", dtype, 1000, t, ExpectedSum(1000, false));
    using var rootValues = Values(size - 1, 1000, ScalarType.Float64);
    Report("broadcast-split-300", dtype, 1000, b, rootValues, new JsonObject { ["root"] = size - 1 });
}

void Broadcast(ScalarType dtype, long n, int root)
{
    using var scope = NewDisposeScope();
    var t = Values(rank, n, dtype);
    collectives.Broadcast(t, root);
    Report("broadcast", dtype, n, t, Values(root, n, ScalarType.Float64), new JsonObject { ["root"] = root });
}

// A model's parameters adopted into one flat buffer travel as one allreduce: every parameter is then the mean.
void FlatAverage(ScalarType dtype)
{
    using var scope = NewDisposeScope();
    var model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3));
    model.to(dtype);
    var parameters = model.parameters().ToList();
    using var buffer = FlatBuffer.AdoptParameters(parameters);
    using (no_grad()) buffer.Flat.fill_(rank + 1);
    collectives.AllReduceAverage(buffer.Flat);
    var mean = (size + 1) / 2.0;
    var parametersMatch = parameters.All(p => p.eq(mean).all().item<bool>());
    Report("flat-buffer-average", dtype, buffer.ElementCount, buffer.Flat, full(buffer.ElementCount, mean, dtype: ScalarType.Float64),
        new JsonObject { ["tensors"] = parameters.Count, ["parameters_match"] = parametersMatch });
}

// A call MPI itself rejects (a broadcast from a rank that does not exist, past the class's own root check): with
// MPI_ERRORS_RETURN set it must come back as an MpiException naming the call, and MPI must stay usable.
unsafe void MpiError(MpiCollectives m)
{
    using var t = Values(rank, 10, ScalarType.Float32);
    string? call = null, message = null;
    try { m.Native.Broadcast(CollectiveTensors.Pointer(t), 10, MpiElement.Float32, size + 5); }
    catch (MpiException e) { (call, message) = (e.Call, e.Message); }
    Emit(new JsonObject { ["check"] = "mpi-error", ["call"] = call, ["message"] = message });
}

void Barrier()
{
    var marker = markerDir is null ? null : Path.Combine(markerDir, "rank1-reached-barrier");
    if (rank == 1 && marker is not null)
    {
        // Late on purpose: without a real barrier rank 0 would look for the file long before it exists.
        Thread.Sleep(700);
        File.WriteAllText(marker, "1");
    }
    collectives.Barrier();
    Emit(new JsonObject { ["check"] = "barrier", ["marker_seen"] = marker is not null && File.Exists(marker) });
}

void Timing()
{
    foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64 })
    {
        using var t = Values(rank, 1_000_000, dtype);
        collectives.AllReduceSum(t); // warm-up
        var times = new List<double>();
        for (var rep = 0; rep < 20; rep++)
        {
            collectives.Barrier();
            var clock = Stopwatch.StartNew();
            collectives.AllReduceSum(t);
            times.Add(clock.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        Emit(new JsonObject
        {
            ["check"] = "timing", ["dtype"] = dtype.ToString(), ["n"] = 1_000_000,
            ["median_ms"] = Math.Round(times[times.Count / 2], 3), ["min_ms"] = Math.Round(times[0], 3),
        });
    }
}

void Report(string check, ScalarType dtype, long n, Tensor actual, Tensor expected, JsonObject? extra = null)
{
    using var a = actual.to(ScalarType.Float64);
    using var diff = a.sub(expected);
    using var bad = diff.abs().gt(0);
    using var sum = a.sum();
    var record = new JsonObject
    {
        ["check"] = check,
        ["dtype"] = dtype.ToString(),
        ["n"] = n,
        ["mismatches"] = bad.sum().item<long>(),
        ["checksum"] = sum.item<double>(),
        ["first"] = a[0].item<double>(),
        ["last"] = a[n - 1].item<double>(),
    };
    foreach (var (key, value) in extra ?? []) record[key] = value?.DeepClone();
    Emit(record);
}

void Emit(JsonObject record)
{
    record["rank"] = rank;
    record["size"] = size;
    // One write(2) per record, straight to the standard output's file: Console.Out's writer hands its stream 256
    // characters at a time, and under mpirun (whose pseudo-terminal forwards a rank's output in whatever pieces it
    // reads) every piece is a chance for the other rank's output to land inside the record. The tests do not rely on
    // this (they read each rank's own file, MpiJob.OutputPerRank); it keeps the console readable, and without
    // Console.Out .NET never sends the terminal escapes it writes to a pseudo-terminal.
    var bytes = System.Text.Encoding.UTF8.GetBytes("probe " + record.ToJsonString(new JsonSerializerOptions { WriteIndented = false }) + "\n");
    standardOutput.Write(bytes);
    standardOutput.Flush();
}

// Both ranks leave a barrier and at once print records of about 3,000 bytes each. On mpirun's console they come out
// cut into each other; the test reads each rank's own output file and must find all 40 whole, in order.
void LongRecords()
{
    collectives.Barrier();
    for (var i = 0; i < 40; i++)
        Emit(new JsonObject { ["check"] = "long-record", ["index"] = i, ["payload"] = LongRecordPayload(rank, i) });
}

// What rank r prints in its record i: 3,000 characters that MpiLaunchTests rebuilds by the same rule.
static string LongRecordPayload(int rank, int index) =>
    string.Concat(Enumerable.Repeat($"r{rank}i{index:D2}-", 3000 / 7)).PadRight(3000, '.');

string? Option(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

