using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace WideValley.Tests.Support;

/// <summary>A network request Chromium's own log (its net log) recorded.</summary>
/// <param name="Url">The requested URL.</param>
/// <param name="TrafficAnnotation">The hash of the Chromium component's traffic annotation that made it (who asked).</param>
public sealed record NetLogRequest(string Url, long? TrafficAnnotation);

/// <summary>What one headless Chromium load of a page produced.</summary>
public sealed class ChromiumPageLoad
{
    /// <summary>The screenshot, PNG, of the window's size.</summary>
    public required byte[] Screenshot { get; init; }

    /// <summary>The DOM after load, serialised (<c>--dump-dom</c>).</summary>
    public required string Dom { get; init; }

    /// <summary>Every connection the local proxy accepted: the first request line ("CONNECT host:443 HTTP/1.1", "GET http://...").</summary>
    public required IReadOnlyList<string> ProxyConnections { get; init; }

    /// <summary>Requests Chromium made for the page or anything but its own listed background services.</summary>
    public required IReadOnlyList<NetLogRequest> PageRequests { get; init; }

    /// <summary>Requests of Chromium's own that no switch turns off (see <see cref="HeadlessChromium.BrowserOwnRequests"/>).</summary>
    public required IReadOnlyList<NetLogRequest> BrowserOwnRequests { get; init; }

    /// <summary>Proxy connections to hosts that no browser-own request explains.</summary>
    public required IReadOnlyList<string> UnexplainedProxyConnections { get; init; }

    /// <summary>Chromium's stderr, for failure messages.</summary>
    public required string Log { get; init; }

    /// <summary>Everything that shows the page reached outside itself; empty for a self-contained page.</summary>
    public IReadOnlyList<string> OutsideLoads =>
        PageRequests.Select(r => $"request {r.Url} (traffic annotation {r.TrafficAnnotation?.ToString() ?? "none"})")
            .Concat(UnexplainedProxyConnections.Select(c => $"proxy connection \"{c}\""))
            .ToList();
}

/// <summary>
/// Runs Debian's <c>chromium</c> headless on a page, as a reader's browser would open it: from a <c>file://</c> URL in
/// a temporary folder that holds only that file, with a fresh profile. One launch takes the screenshot
/// (<c>--screenshot</c>), dumps the DOM after load (<c>--dump-dom</c>) and watches the network two ways:
/// <list type="bullet">
/// <item>every connection goes to a proxy that is a local <see cref="TcpListener"/> started here
/// (<c>--proxy-server</c>, with loopback not bypassed), which records the request line and answers 502, so a page that
/// reaches for anything, anywhere, makes a connection the test sees; host names do not resolve at all
/// (<c>--host-resolver-rules</c>), so nothing can go around the proxy;</item>
/// <item>Chromium's own net log (<c>--log-net-log</c>) names, for each request, the component that made it (its
/// traffic annotation), which tells page loads from the browser's background services.</item>
/// </list>
/// Background traffic is switched off with the usual switches. Two requests survive every switch on Chromium 156
/// (both seen in the net log here; the second is documented as unstoppable in chromiumembedded/cef#4276): the
/// component updater's on-demand fetch of the "Optimization Guide On Device Models" manifest and the Google account
/// list (<c>accounts.google.com/ListAccounts</c>) a fresh profile asks for. They are exempt only when both their
/// traffic annotation and their URL match (<see cref="BrowserOwnRequests"/>); a page's own request to the same hosts
/// carries Blink's annotation and still counts.
/// </summary>
public static class HeadlessChromium
{
    /// <summary>The Debian package.</summary>
    public const string AptPackage = "chromium";

    /// <summary>Names tried on PATH, in order.</summary>
    public static readonly IReadOnlyList<string> BinaryNames = ["chromium", "chromium-browser"];

    /// <summary>
    /// Browser-own requests no switch turns off: (traffic annotation hash, URL prefix, what it is). Hashes as Chromium
    /// 156's net log reports them.
    /// </summary>
    public static readonly IReadOnlyList<(long Annotation, string UrlPrefix, string What)> BrowserOwnRequests =
    [
        (54845618, "https://update.googleapis.com/service/update2/", "component updater (on-demand model manifest)"),
        (54845618, "http://update.googleapis.com/service/update2/", "component updater (on-demand model manifest)"),
        (35565745, "https://accounts.google.com/ListAccounts", "Google account list of a new profile"),
    ];

    /// <summary>Switches that keep Chromium's own background traffic off, so only the page can cause a request.</summary>
    private static readonly string[] QuietSwitches =
    [
        "--no-first-run", "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--disable-default-apps", "--disable-extensions", "--disable-component-extensions-with-background-pages",
        "--disable-client-side-phishing-detection", "--disable-domain-reliability", "--disable-breakpad", "--no-pings",
        "--metrics-recording-only", "--safebrowsing-disable-auto-update", "--disable-dev-shm-usage", "--password-store=basic",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,OptimizationGuideModelDownloading,MediaRouter," +
        "Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    ];

    private static readonly Lazy<string?> Binary = new(FindBinary);

    /// <summary>
    /// The chromium binary on PATH. Skips the calling test when there is none, or fails it under CI
    /// (<see cref="TestMachine.RequireVariable"/>=1 or CI=true), where the package is installed by .ci/run.
    /// </summary>
    public static string Require()
    {
        var binary = TestMachine.Simulated ? null : Binary.Value;
        TestMachine.Require(binary is not null,
            $"a headless browser: none of {string.Join(", ", BinaryNames)} is on PATH" +
            (TestMachine.Simulated && Binary.Value is not null ? $" ({Binary.Value} is hidden by {TestMachine.SimulateVariable}=1)" : "") +
            $" (sudo apt-get install {AptPackage})");
        return binary!;
    }

    /// <summary>
    /// Opens <paramref name="html"/> (written to a fresh temporary folder as the only file) in headless Chromium at a
    /// window of <paramref name="width"/> x <paramref name="height"/> CSS pixels (device scale 1) and returns the
    /// screenshot, the DOM after load and every network request it made.
    /// </summary>
    /// <exception cref="TimeoutException">Chromium did not finish within <paramref name="timeout"/> (default 60 s); it is killed.</exception>
    public static ChromiumPageLoad Load(string html, int width, int height, TimeSpan? timeout = null)
    {
        var binary = Require();
        using var pageFolder = new TempDir("widevalley-page");
        using var work = new TempDir("widevalley-chromium");
        var page = pageFolder.WriteText("report.html", html);
        var screenshot = work.File("screenshot.png");
        var netLog = work.File("netlog.json");

        using var proxy = new RecordingProxy();
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in (string[])
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
                $"--user-data-dir={work.File("profile")}",
                .. QuietSwitches,
                $"--proxy-server=http://127.0.0.1:{proxy.Port}",
                "--proxy-bypass-list=<-loopback>",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                $"--log-net-log={netLog}", "--net-log-capture-mode=Default",
                $"--window-size={width},{height}", $"--screenshot={screenshot}", "--dump-dom",
                new Uri(page).AbsoluteUri,
            ])
            start.ArgumentList.Add(argument);

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {binary}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        if (!process.WaitForExit(limit))
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit();
            throw new TimeoutException($"{binary} did not finish loading {page} within {limit.TotalSeconds:0} s; it was killed. Its log: {Tail(stderr)}");
        }
        process.WaitForExit();
        var log = stderr.Result;
        // Connections Chromium opened just before it exited may still wait in the listener's backlog.
        Thread.Sleep(300);
        var connections = proxy.Stop();

        if (process.ExitCode != 0 || !File.Exists(screenshot))
            throw new InvalidOperationException($"{binary} exited with code {process.ExitCode} and {(File.Exists(screenshot) ? "a" : "no")} screenshot. Its log: {Tail(stderr)}");
        var requests = ReadNetLog(netLog);
        var browserOwn = requests.Where(IsBrowserOwn).ToList();
        var pageRequests = requests.Where(r => !IsBrowserOwn(r)).ToList();
        var explainedHosts = browserOwn.Select(r => new Uri(r.Url).Host.ToLowerInvariant()).ToHashSet();
        var unexplained = connections.Where(c => ProxyHost(c) is not { } host || !explainedHosts.Contains(host)).ToList();

        return new ChromiumPageLoad
        {
            Screenshot = File.ReadAllBytes(screenshot),
            Dom = stdout.Result,
            ProxyConnections = connections,
            PageRequests = pageRequests,
            BrowserOwnRequests = browserOwn,
            UnexplainedProxyConnections = unexplained,
            Log = log,
        };
    }

    /// <summary>The first of <see cref="BinaryNames"/> found as an executable file in a PATH folder, or null.</summary>
    private static string? FindBinary()
    {
        var folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        foreach (var name in BinaryNames)
            foreach (var folder in folders)
            {
                var candidate = Path.Combine(folder, name);
                if (File.Exists(candidate) && !OperatingSystem.IsWindows() && (File.GetUnixFileMode(candidate) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0)
                    return candidate;
            }
        return null;
    }

    private static string Tail(Task<string> stderr)
    {
        var text = stderr.IsCompleted ? stderr.Result : "";
        return text.Length <= 2000 ? text : "..." + text[^2000..];
    }

    private static bool IsBrowserOwn(NetLogRequest request) =>
        BrowserOwnRequests.Any(own => request.TrafficAnnotation == own.Annotation && request.Url.StartsWith(own.UrlPrefix, StringComparison.Ordinal));

    /// <summary>The host a proxy request line asks for: "CONNECT host:443 HTTP/1.1" or "GET http://host/path HTTP/1.1".</summary>
    internal static string? ProxyHost(string requestLine)
    {
        var parts = requestLine.Split(' ');
        if (parts.Length < 2) return null;
        var target = parts[1];
        if (parts[0] == "CONNECT")
        {
            var colon = target.LastIndexOf(':');
            return (colon < 0 ? target : target[..colon]).Trim('[', ']').ToLowerInvariant();
        }
        // "/path" parses as an absolute file: URI on Unix; a proxy request names a host.
        return Uri.TryCreate(target, UriKind.Absolute, out var uri) && uri.Host.Length > 0 ? uri.Host.ToLowerInvariant() : null;
    }

    /// <summary>
    /// Every request the net log records (events of type REQUEST_ALIVE that carry a URL), with its traffic
    /// annotation. Requests for the page itself (file:) and data: URLs never reach the network stack and are not in it.
    /// </summary>
    internal static IReadOnlyList<NetLogRequest> ReadNetLog(string path)
    {
        if (!File.Exists(path)) throw new InvalidOperationException($"Chromium wrote no net log at {path}.");
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        var root = document.RootElement;
        if (!root.GetProperty("constants").GetProperty("logEventTypes").TryGetProperty("REQUEST_ALIVE", out var aliveType))
            throw new InvalidOperationException($"The net log {path} names no REQUEST_ALIVE event type; its format changed.");
        var alive = aliveType.GetInt32();
        var requests = new List<NetLogRequest>();
        foreach (var entry in root.GetProperty("events").EnumerateArray())
        {
            if (entry.GetProperty("type").GetInt32() != alive) continue;
            if (!entry.TryGetProperty("params", out var parameters) || !parameters.TryGetProperty("url", out var url)) continue;
            long? annotation = parameters.TryGetProperty("traffic_annotation", out var a) && a.ValueKind == JsonValueKind.Number ? a.GetInt64() : null;
            requests.Add(new NetLogRequest(url.GetString() ?? "", annotation));
        }
        return requests;
    }

    /// <summary>
    /// An HTTP proxy that proxies nothing: it accepts every connection on a loopback port, records the first request
    /// line, answers 502 and closes.
    /// </summary>
    private sealed class RecordingProxy : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<string> _requests = [];
        private readonly List<Task> _handlers = [];
        private readonly Task _accepting;

        public RecordingProxy()
        {
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _accepting = Task.Run(AcceptLoop);
        }

        public int Port { get; }

        /// <summary>Stops accepting, lets the connections in flight finish (2 s at most) and returns what was seen.</summary>
        public IReadOnlyList<string> Stop()
        {
            _listener.Stop();
            try { _accepting.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
            Task[] handlers;
            lock (_handlers) handlers = _handlers.ToArray();
            Task.WaitAll(handlers, TimeSpan.FromSeconds(2));
            lock (_requests) return _requests.ToList();
        }

        public void Dispose() => _listener.Stop();

        private async Task AcceptLoop()
        {
            while (true)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(); }
                catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException) { return; }
                lock (_handlers) _handlers.Add(Task.Run(() => Handle(client)));
            }
        }

        private async Task Handle(TcpClient client)
        {
            using (client)
            {
                var line = "(connection without a request)";
                try
                {
                    using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    var stream = client.GetStream();
                    var buffer = new byte[8192];
                    var received = 0;
                    while (received < buffer.Length)
                    {
                        var n = await stream.ReadAsync(buffer.AsMemory(received), cancel.Token);
                        if (n == 0) break;
                        received += n;
                        var text = Encoding.ASCII.GetString(buffer, 0, received);
                        if (text.Contains("\r\n", StringComparison.Ordinal))
                        {
                            line = text[..text.IndexOf("\r\n", StringComparison.Ordinal)];
                            break;
                        }
                    }
                    var answer = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray();
                    await stream.WriteAsync(answer, cancel.Token);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException) { }
                lock (_requests) _requests.Add(line);
            }
        }
    }
}
