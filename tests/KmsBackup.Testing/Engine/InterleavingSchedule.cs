// Over 400 lines: one seeded schedule reads as one story: its generator, the hosts' actions and the invariants checked after each step.
using System.Globalization;
using KmsBackup.Testing.Storage;

using Microsoft.Extensions.Time.Testing;

namespace KmsBackup.Testing.Engine;

/// <summary>
/// One seeded schedule of the interleaving test: 2 or 3 hosts, each a <see cref="BackupClient"/> over its own
/// <see cref="ControlledStore"/> of one store, run backups, prunes, resets, re-enables, extends and restores at the
/// same time; every store call (leases included) parks until the scheduler, a <see cref="Random"/> of the seed, lets
/// one through. Between calls the scheduler changes the instances, steps the clock (past lease expiry and the prune
/// grace period), sets a host's clock wrong, or kills a host at its parked call (its store then fails every call, and
/// a fresh client is opened for it). After every operation ends, the oracle checks the store with a fresh client.
/// </summary>
internal sealed partial class InterleavingSchedule
{
    public const string Owner = "acct-owner";
    private const string Region = "cn-hangzhou";
    private const int MaxCrashes = 2;
    private const long DrainAfterStep = 1500;
    private static readonly DateTimeOffset s_start = new(2026, 5, 1, 22, 0, 0, TimeSpan.Zero);

    private readonly int _seed;
    private readonly Random _random;
    private readonly Func<TimeProvider, BackupStore> _createStore;
    private readonly TimeSpan _quietTimeout;
    private readonly FakeTimeProvider _clock = new(s_start);
    private readonly InterleavingGate _gate = new();
    private readonly InterleavingInstances _instances;
    private readonly SeededRepositoryKeys _keys;
    private readonly List<string> _log = [];
    private readonly List<Host> _hosts = [];
    private readonly List<Backup> _backups = [];
    private readonly List<CommittedPoint> _committed = [];
    private readonly List<ResetAttempt> _resets = [];
    private readonly Queue<Func<Task>> _tail = new();
    private readonly int _maxOperations;
    private readonly bool _wrongClocks;

    // Whether key rotations and rekeys join the operations (a schedule of its own: seeds of the plain test keep their schedules).
    private readonly bool _withRekeys;
    private bool _clocksWereWrong;
    private long _step;
    private int _operations;
    private int _crashes;
    private int _targets;
    private string? _failure;

    // Whether the store or the time changed since the last check: when neither did, the check would find the same.
    private bool _changed = true;


    public InterleavingSchedule(int seed, Func<TimeProvider, BackupStore> createStore, TimeSpan quietTimeout, bool withRekeys = false)
    {
        _withRekeys = withRekeys;
        _seed = seed;
        _random = new Random(seed);
        _createStore = createStore;
        _quietTimeout = quietTimeout;
        _instances = new InterleavingInstances(_clock, Owner, Region);
        _keys = new SeededRepositoryKeys(seed);
        _maxOperations = 6 + _random.Next(6);

        // Wrong clocks in a quarter of the schedules only: what a wrong clock breaks would hide everything else.
        _wrongClocks = _random.Next(4) == 0;
    }

    /// <summary>What the schedule did, one line per step.</summary>
    public IReadOnlyList<string> Log => _log;

    /// <summary>How many operations the schedule ran.</summary>
    public int Operations => _operations;

    /// <summary>Runs the schedule; returns the first failure, or <see langword="null"/> when every check passed.</summary>
    public async Task<string?> RunAsync()
    {
        try
        {
            await SetUpAsync();
            await CheckAsync("after setup");
            _tail.Enqueue(() => LaunchAsync(_hosts[_random.Next(_hosts.Count)], OperationKind.Prune));
            _tail.Enqueue(() => StepClockAsync(TimeSpan.FromMinutes(61), "past the prune grace period"));
            _tail.Enqueue(() => LaunchAsync(_hosts[_random.Next(_hosts.Count)], OperationKind.Prune));
            while (_failure is null)
            {
                await _gate.WaitQuietAsync(_quietTimeout);
                if (_gate.Broken is { } broken)
                {
                    Fail("test", broken);
                    break;
                }

                await HarvestAsync();
                if (_failure is not null || !await NextStepAsync())
                {
                    break;
                }

                Interlocked.Increment(ref _step);
            }

            if (_failure is null)
            {
                await CheckAsync("at the end");
            }
        }
        catch (TimeoutException e)
        {
            Fail("stuck", e.Message);
            return _failure;
        }
        catch (Exception e) when (_failure is null)
        {
            Fail("test", $"the schedule itself failed: {e}");
        }

        await StopAsync();
        return _failure;
    }

    // ---------- setup ----------

    private async Task SetUpAsync()
    {
        _instances.AddSource("kst-0", 0);
        _instances.AddSource("kst-1", 0);
        var hosts = 2 + _random.Next(2);
        for (var i = 0; i < hosts; i++)
        {
            var host = new Host(i, new HostClock(_clock, _gate));
            _hosts.Add(host);
            await StartProcessAsync(host, scheduled: false);
        }

        // The engine goes through backups in the order of their (random) IDs: the two default backups get their
        // roles by that order, so that a seed replays the same schedule.
        var client = _hosts[0].Process!.Client;
        var defaults = new[] { await client.CreateDefaultBackupAsync(Owner), await client.CreateDefaultBackupAsync(Owner) }.OrderBy(d => d.Id, StringComparer.Ordinal).ToList();
        var purchased = (await client.PurchaseBackupsAsync(Owner, new PurchaseOrder(Region, 7, PurchaseTerm.FromYears(1))))[0];
        AddBackup(defaults[0].Id, BackupKind.Default);
        AddBackup(purchased.Id, BackupKind.Purchased);
        AddBackup(defaults[1].Id, BackupKind.Default);
        RecordSetupPoint((await client.EnableBackupAsync(Owner, defaults[0].Id, "kst-0", InstanceKind.Software)).LatestPoint);
        RecordSetupPoint((await client.EnableBackupAsync(Owner, purchased.Id, "kst-1", InstanceKind.Software)).LatestPoint);
        if (_random.Next(2) == 0)
        {
            RecordSetupPoint((await client.EnableBackupAsync(Owner, defaults[1].Id, $"kst-{_random.Next(2)}", InstanceKind.Software)).LatestPoint);
        }

        foreach (var host in _hosts)
        {
            host.Process!.Scheduled = true;
        }

        Write($"setup: {hosts} hosts; B0 default on kst-0, B1 purchased (7 days) on kst-1, B2 default {(_committed.Count == 3 ? "enabled" : "disabled")}; {_maxOperations} operations");
    }

    private void AddBackup(string id, BackupKind kind) => _backups.Add(new Backup(id, $"B{_backups.Count}", kind));

    private void RecordSetupPoint(RecoveryPoint? point)
    {
        if (point is not null)
        {
            _committed.Add(new CommittedPoint(point, "setup", 0, 0));
        }
    }

    private async Task StartProcessAsync(Host host, bool scheduled)
    {
        var process = new HostProcess(host.Index, host.Generation++);
        var store = new ControlledStore(new RenewalProbeStore(_createStore(host.Clock), _gate));
        store.Before = call => BeforeAsync(process, call);
        process.Client = await BackupClient.OpenAsync(store, _keys, _instances, hsmClusters: null, new BackupClientOptions
        {
            TimeProvider = host.Clock,
            LeaseHolder = $"h{host.Index}:{process.Generation}",
            PruneRepackThreshold = 0.05, // repack whenever a live pack holds any garbage worth the name: repacks race everything
        });
        process.Scheduled = scheduled;
        host.Process = process;
    }

    private async Task BeforeAsync(HostProcess process, StoreCall call)
    {
        var renewal = call.Kind == StoreCallKind.RenewLease;
        if (process.Dead)
        {
            // A dead process writes nothing more; its keeper, which a clock step woke, stops here.
            if (renewal)
            {
                _gate.Stopped();
            }

            throw new HostKilledException($"h{process.Host}:{process.Generation} was killed");
        }

        if (!process.Scheduled)
        {
            return;
        }

        try
        {
            await _gate.ParkAsync(process.Host, process.Generation, call);
        }
        catch (HostKilledException) when (renewal)
        {
            _gate.Stopped();
            throw;
        }
    }

    // ---------- the scheduler ----------

    /// <summary>Chooses and takes one step; returns false when the schedule is over.</summary>
    private async Task<bool> NextStepAsync()
    {
        var parked = _gate.Parked;
        var idle = _hosts.Where(h => h.Operation is null).ToList();
        var draining = Volatile.Read(ref _step) > DrainAfterStep;
        var canLaunch = idle.Count > 0 && _operations < _maxOperations && !draining;
        if (parked.Count == 0 && !canLaunch)
        {
            if (_hosts.Any(h => h.Operation is not null))
            {
                Fail("test", "operations run but none is parked or running");
                return false;
            }

            if (_tail.TryDequeue(out var next))
            {
                await next();
                return true;
            }

            return false;
        }

        var elapsed = _clock.GetUtcNow() - s_start;
        var weights = new (double Weight, Func<Task> Step)[]
        {
            (parked.Count > 0 ? 12 : 0, () => ReleaseAsync(parked[_random.Next(parked.Count)])),
            (canLaunch ? (parked.Count == 0 ? 8 : 3) : 0, () => LaunchAsync(idle[_random.Next(idle.Count)], PickOperation())),
            (draining ? 0 : 1.2, ChangeInstanceAsync),
            (draining ? 0 : 1.5, () => StepClockAsync(PickClockStep(elapsed), null)),
            (draining || !_wrongClocks ? 0 : 0.3, SkewClockAsync),
            (parked.Count > 0 && _crashes < MaxCrashes && !draining ? 0.5 : 0, () => KillAsync(parked[_random.Next(parked.Count)])),
        };
        var pick = _random.NextDouble() * weights.Sum(w => w.Weight);
        foreach (var (weight, step) in weights)
        {
            if (pick < weight)
            {
                await step();
                return true;
            }

            pick -= weight;
        }

        await weights.Last(w => w.Weight > 0).Step();
        return true;
    }

    private Task ReleaseAsync(InterleavingGate.ParkedCall parked)
    {
        Write($"h{parked.Host}{(parked.IsRenewal ? " keeper" : string.Empty)} {parked.Call}");
        _changed |= parked.Call.Kind is StoreCallKind.Create or StoreCallKind.Delete;
        _gate.Release(parked);
        return Task.CompletedTask;
    }

    private Task KillAsync(InterleavingGate.ParkedCall parked)
    {
        var host = _hosts[parked.Host];
        var process = host.Process!;
        _crashes++;
        process.Dead = true;
        Write($"KILL h{host.Index}:{process.Generation} at its {(parked.IsRenewal ? "keeper's " : string.Empty)}{parked.Call}");
        var error = new HostKilledException($"h{host.Index}:{process.Generation} was killed");
        foreach (var call in _gate.Parked.Where(p => p.Host == host.Index))
        {
            _gate.Fail(call, error);
        }

        return Task.CompletedTask;
    }

    private Task ChangeInstanceAsync()
    {
        Write(_instances.Change($"kst-{_random.Next(2)}", _random, Volatile.Read(ref _step)));
        return Task.CompletedTask;
    }

    private TimeSpan PickClockStep(TimeSpan elapsed)
    {
        var roll = _random.Next(100);
        return roll switch
        {
            _ when elapsed > TimeSpan.FromDays(2) => TimeSpan.FromMinutes(1 + _random.Next(5)),
            < 30 => TimeSpan.FromMinutes(1 + _random.Next(4)),
            < 55 => TimeSpan.FromMinutes(5),
            < 75 => TimeSpan.FromMinutes(6 + _random.Next(4)),
            < 90 => TimeSpan.FromMinutes(61 + _random.Next(30)),
            _ => TimeSpan.FromMinutes(((24 * 60) - ((_clock.GetUtcNow().TimeOfDay.Ticks / TimeSpan.TicksPerMinute) % (24 * 60))) + 1 + _random.Next(10)),
        };
    }

    private async Task StepClockAsync(TimeSpan step, string? why)
    {
        _clock.Advance(step);
        _changed = true;
        Write($"clock +{Minutes(step)} -> {_clock.GetUtcNow():yyyy-MM-dd HH:mm}{(why is null ? string.Empty : $" ({why})")}");

        // Keepers whose timers fired run to their renewal's store call now.
        await _gate.WaitQuietAsync(_quietTimeout);
    }

    private Task SkewClockAsync()
    {
        var host = _hosts[_random.Next(_hosts.Count)];
        var roll = _random.Next(10);
        host.Clock.Skew = roll switch
        {
            < 5 => TimeSpan.Zero,
            < 7 => TimeSpan.FromDays(10),
            < 8 => TimeSpan.FromDays(400),
            _ => TimeSpan.FromMinutes(-30),
        };
        _clocksWereWrong |= host.Clock.Skew != TimeSpan.Zero;
        Write($"h{host.Index}'s clock is now {(host.Clock.Skew == TimeSpan.Zero ? "right" : $"off by {Minutes(host.Clock.Skew)}")}");
        return Task.CompletedTask;
    }

    private static string Minutes(TimeSpan span) =>
        span.TotalDays >= 1 || span.TotalDays <= -1 ? $"{span.TotalDays:0.#}d" : $"{span.TotalMinutes:0}m";

    // ---------- operations ----------

    private enum OperationKind
    {
        RunDue,
        Prune,
        Reset,
        Enable,
        Extend,
        Restore,
        Rekey,
    }

    private OperationKind PickOperation()
    {
        if (_withRekeys && _random.Next(100) < 20)
        {
            return OperationKind.Rekey;
        }

        var roll = _random.Next(100);
        return roll switch
        {
            < 40 => OperationKind.RunDue,
            < 55 => OperationKind.Prune,
            < 67 => OperationKind.Reset,
            < 75 => OperationKind.Enable,
            < 82 => OperationKind.Extend,
            _ => OperationKind.Restore,
        };
    }

    private async Task LaunchAsync(Host host, OperationKind kind)
    {
        var backup = _backups[_random.Next(_backups.Count)];
        Func<BackupClient, Operation, Task<string>> body;
        string name;
        switch (kind)
        {
            case OperationKind.RunDue:
                if (_random.Next(2) == 0)
                {
                    await StepClockAsync(TimeSpan.FromMinutes(5), "before a run");
                }

                name = "RunDueBackups";
                body = async (client, op) =>
                {
                    // The points a pass committed are known even when other backups of the pass failed.
                    var results = await client.RunDueBackupsAsync();
                    op.Reported.AddRange(results.Select(r => r.Point));
                    results.ThrowIfAnyFailed();
                    return results.Count == 0 ? "nothing due" : $"committed {string.Join(", ", results.Select(r => Describe(r.Point)))}";
                };
                break;
            case OperationKind.Prune:
                name = "Prune";
                body = async (client, _) => (await client.PruneAsync()).ToString();
                break;
            case OperationKind.Reset:
            {
                var enableAfter = _random.Next(10) < 7;
                var instance = $"kst-{_random.Next(2)}";
                name = $"Reset {backup.Alias}{(enableAfter ? $", enable on {instance}" : string.Empty)}";
                var attempt = new ResetAttempt(backup, Volatile.Read(ref _step));
                lock (_resets)
                {
                    _resets.Add(attempt);
                }

                body = async (client, op) =>
                {
                    try
                    {
                        await client.ResetBackupAsync(Owner, backup.Id);
                    }
                    catch (Exception e)
                    {
                        attempt.End(Volatile.Read(ref _step), e);
                        throw;
                    }

                    attempt.End(Volatile.Read(ref _step), null);
                    if (!enableAfter)
                    {
                        return "reset";
                    }

                    backup.EnableStarted(Volatile.Read(ref _step));
                    var details = await client.EnableBackupAsync(Owner, backup.Id, instance, InstanceKind.Software);
                    op.AddIfNotNull(details.LatestPoint);
                    return $"reset, enabled{(details.LatestPoint is { } p ? $", committed {Describe(p)}" : string.Empty)}";
                };
                break;
            }

            case OperationKind.Enable:
            {
                // Enabling an enabled backup is refused at once: prefer one the last check saw disabled.
                if (_backups.Where(b => b.Details?.Status == BackupStatus.Disabled).ToList() is { Count: > 0 } disabled)
                {
                    backup = disabled[_random.Next(disabled.Count)];
                }

                var instance = $"kst-{_random.Next(2)}";
                name = $"Enable {backup.Alias} on {instance}";
                body = async (client, op) =>
                {
                    backup.EnableStarted(Volatile.Read(ref _step));
                    var details = await client.EnableBackupAsync(Owner, backup.Id, instance, InstanceKind.Software);
                    op.AddIfNotNull(details.LatestPoint);
                    return $"enabled{(details.LatestPoint is { } p ? $", committed {Describe(p)}" : string.Empty)}";
                };
                break;
            }

            case OperationKind.Rekey:
            {
                var rotate = _random.Next(100) < 40;
                var budget = 1 + _random.Next(3);
                name = $"{(rotate ? "Rotate the key, then rekey" : "Rekey")} at most {budget} packs";
                body = async (client, _) =>
                {
                    var rotation = rotate ? $"generation {(await client.RotateRepositoryKeyAsync()).KeyGeneration}; " : string.Empty;
                    var summary = await client.RekeyAsync(budget);
                    return $"{rotation}rewrote {summary.PacksRewritten} packs under generation {summary.KeyGeneration}, {summary.PacksRemaining} left";
                };
                break;
            }

            case OperationKind.Extend:
            {
                var purchased = _backups.First(b => b.Kind == BackupKind.Purchased);
                var days = Math.Min(600, (purchased.Details?.ViewableDays ?? 7) + 1 + _random.Next(3));
                name = $"Extend {purchased.Alias} to {days} days";
                body = async (client, _) => $"{(await client.ExtendViewableDaysAsync(Owner, purchased.Id, days)).ViewableDays} days";
                break;
            }

            default:
            {
                var target = $"tgt-{++_targets}";
                _instances.AddTarget(target, $"rg-{_targets}");
                var source = backup.Details?.Instance?.Id ?? "kst-0";
                var names = _instances.KeyNames(source);
                var keyNames = names.OrderBy(_ => _random.Next()).Take(1 + _random.Next(2)).Append(InterleavingInstances.MarkerName).ToList();
                var at = host.Clock.GetUtcNow();
                name = $"Restore {backup.Alias} keys {string.Join(",", keyNames)} at {at:HH:mm} into {target}";
                body = async (client, _) =>
                {
                    var result = await client.RestoreAsync(new RestoreRequest
                    {
                        CallerAccount = Owner, BackupId = backup.Id, TargetInstanceId = target, PointInTime = at, KeyNames = keyNames,
                    });
                    return $"restored {result.Restored.Count}: {CheckRestored(target)}";
                };
                break;
            }
        }

        var process = host.Process!;
        var operation = new Operation(++_operations, name, kind == OperationKind.Restore, Volatile.Read(ref _step));
        host.Operation = operation;
        Write($"h{host.Index} starts #{operation.Id} {name}");
        _gate.Started();
        _ = Task.Run(async () =>
        {
            object outcome;
            try
            {
                outcome = await body(process.Client, operation);
            }
            catch (Exception e)
            {
                outcome = e;
            }

            operation.Finish(outcome, Volatile.Read(ref _step));
            _gate.Stopped();
        });
    }

    /// <summary>What a restore wrote must be exactly the items of one version of the source instance: the one its marker names.</summary>
    private string CheckRestored(string target)
    {
        var restored = _instances.RestoredKeys(target);
        if (!restored.TryGetValue(InterleavingInstances.MarkerName, out var marker) ||
            InterleavingInstances.SourceOfMarker(marker) is not { } source ||
            _instances.ContentAt(source, InterleavingInstances.VersionOfMarker(marker)) is not { } content)
        {
            return "RESTORE-MISMATCH: the marker key was not restored";
        }

        var expected = content.Keys.ToDictionary(k => k.Name, StringComparer.Ordinal);
        foreach (var (name, key) in restored)
        {
            if (!expected.TryGetValue(name, out var want) || !want.Equals(key))
            {
                return $"RESTORE-MISMATCH: the key '{name}' restored is not the one {source} v{InterleavingInstances.VersionOfMarker(marker)} held";
            }
        }

        return $"{source} v{InterleavingInstances.VersionOfMarker(marker)}";
    }

    private async Task HarvestAsync()
    {
        foreach (var host in _hosts)
        {
            if (host.Operation is not { IsFinished: true } operation)
            {
                continue;
            }

            host.Operation = null;
            var process = host.Process!;
            var outcome = operation.Outcome switch
            {
                string text => text,
                Exception e => $"{e.GetType().Name}{(e is BackupException b ? $" {b.Code}" : string.Empty)}: {FirstLine(e.Message)}",
                _ => "?",
            };
            Write($"h{host.Index} ends #{operation.Id} {operation.Name}: {outcome}");
            if (!process.Dead)
            {
                if (operation.Outcome is Exception error && Unexpected(error, operation.IsRestore) is { } why)
                {
                    Fail("unexpected error", $"#{operation.Id} {operation.Name} on h{host.Index} failed: {why}");
                    return;
                }

                if (operation.Outcome is string text && text.Contains("RESTORE-MISMATCH", StringComparison.Ordinal))
                {
                    Fail("restore", $"#{operation.Id} {operation.Name}: {text}");
                    return;
                }
            }

            foreach (var point in operation.Reported)
            {
                _committed.Add(new CommittedPoint(point, $"#{operation.Id} {operation.Name} on h{host.Index}", operation.StartStep, operation.EndStep));
            }

            if (process.Dead)
            {
                process.Client.Dispose();
                await StartProcessAsync(host, scheduled: true);
                Write($"h{host.Index} restarts as h{host.Index}:{host.Process!.Generation}");
            }

            await CheckAsync($"after #{operation.Id}");
            if (_failure is not null)
            {
                return;
            }
        }
    }

    /// <summary>Why an error ends an operation of a live host unexpectedly, or <see langword="null"/> when it is a refusal the operation may meet.</summary>
    private static string? Unexpected(Exception error, bool restore) => error switch
    {
        AggregateException many => many.InnerExceptions.Select(e => Unexpected(e, restore)).FirstOrDefault(w => w is not null),
        BackupIntegrityException => error.ToString(),
        RestoreException refused when refused.RefusedByPlan => null,
        BackupException known when IsExpected(known.Code, restore) => null,
        _ => error.ToString(),
    };

    private static bool IsExpected(BackupErrorCode code, bool restore) =>
        code == BackupErrorCode.LeaseHeld || code == BackupErrorCode.LeaseLost ||
        code == BackupErrorCode.BackupAlreadyEnabled || code == BackupErrorCode.BackupNotEnabled ||
        code == BackupErrorCode.OperationNotSupported || code == BackupErrorCode.BackupExpired || code == BackupErrorCode.BackupReleased ||
        code == BackupErrorCode.ViewableDaysNotIncreased || code == BackupErrorCode.ViewableDaysOutOfRange ||
        code == BackupErrorCode.DateOutsideWindow || code == BackupErrorCode.DateBeforeEnabled ||
        code == BackupErrorCode.DateInFuture || code == BackupErrorCode.DateNotReachable ||
        (restore && code == BackupErrorCode.NotFound) ||

        // A host whose clock is wrong is told so (the codes are new with the store clock).
        code.ToString().StartsWith("Clock", StringComparison.Ordinal);

    private async Task StopAsync()
    {
        // Whatever still runs (after a failure) dies, so that nothing is left behind.
        foreach (var host in _hosts)
        {
            if (host.Process is { } process)
            {
                process.Dead = true;
            }
        }

        foreach (var parked in _gate.Parked)
        {
            _gate.Fail(parked, new HostKilledException("the schedule ended"));
        }

        try
        {
            await _gate.WaitQuietAsync(_quietTimeout);
        }
        catch (TimeoutException)
        {
            // Reported already, or nothing more to say: the schedule is over.
        }

        foreach (var host in _hosts)
        {
            host.Process?.Client.Dispose();
        }
    }

    // ---------- the log ----------

    private void Write(string line)
    {
        foreach (var backup in _backups)
        {
            line = line.Replace(backup.Id, backup.Alias, StringComparison.Ordinal);
        }

        _log.Add($"{Volatile.Read(ref _step),4} {line}");
    }

    private void Fail(string kind, string message)
    {
        if (_failure is not null)
        {
            return;
        }

        foreach (var backup in _backups)
        {
            message = message.Replace(backup.Id, backup.Alias, StringComparison.Ordinal);
        }

        _failure = $"[{kind}{(_clocksWereWrong ? ", a host's clock was wrong" : string.Empty)}] {message}";
        Write($"FAILED {_failure}");
    }

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();

    private static string Describe(RecoveryPoint point) =>
        $"{point.BackupId} {point.Date:yyyy-MM-dd} #{point.Sequence} ({(point.Kind == BackupRunKind.Full ? "full" : "incr")}, taken {point.TakenAt:MM-dd HH:mm})";

    // ---------- the schedule's parts ----------

    private sealed class Host(int index, HostClock clock)
    {
        public int Index { get; } = index;

        public HostClock Clock { get; } = clock;

        public int Generation { get; set; }

        public HostProcess? Process { get; set; }

        public Operation? Operation { get; set; }
    }

    private sealed class HostProcess(int host, int generation)
    {
        public int Host { get; } = host;

        public int Generation { get; } = generation;

        public BackupClient Client { get; set; } = null!;

        public volatile bool Dead;

        public volatile bool Scheduled;
    }

    private sealed class Operation(int id, string name, bool isRestore, long startStep)
    {
        private object? _outcome;

        public int Id { get; } = id;

        public string Name { get; } = name;

        public bool IsRestore { get; } = isRestore;

        public long StartStep { get; } = startStep;

        public long EndStep { get; private set; }

        public List<RecoveryPoint> Reported { get; } = [];

        public object? Outcome => Volatile.Read(ref _outcome);

        public bool IsFinished => Outcome is not null;

        public void AddIfNotNull(RecoveryPoint? point)
        {
            if (point is not null)
            {
                Reported.Add(point);
            }
        }

        public void Finish(object outcome, long step)
        {
            EndStep = step;
            Volatile.Write(ref _outcome, outcome);
        }
    }

    private sealed class Backup(string id, string alias, BackupKind kind)
    {
        private readonly List<long> _enabledAtSteps = [];

        /// <summary>Records an enable of this backup that started at <paramref name="step"/>.</summary>
        public void EnableStarted(long step)
        {
            lock (_enabledAtSteps)
            {
                _enabledAtSteps.Add(step);
            }
        }

        /// <summary>
        /// Whether an enable started after <paramref name="step"/>. An enable of an enabled backup is refused before it
        /// changes anything; one that deletes a reset's leftovers, or stores the backup enabled again, found it Disabled.
        /// So a backup seen enabled without points that a reset begun at <paramref name="step"/> would have deleted, after
        /// such an enable, was reset: by that reset (which died after storing its decision) or a later one.
        /// </summary>
        public bool EnableStartedAfter(long step)
        {
            lock (_enabledAtSteps)
            {
                return _enabledAtSteps.Any(s => s > step);
            }
        }

        public string Id { get; } = id;

        public string Alias { get; } = alias;

        public BackupKind Kind { get; } = kind;

        /// <summary>As the last check read it.</summary>
        public BackupDetails? Details { get; set; }
    }

    /// <summary>A point a client reported committed, and what the oracle learnt of it.</summary>
    private sealed class CommittedPoint(RecoveryPoint point, string by, long startStep, long endStep)
    {
        public RecoveryPoint Point { get; } = point;

        public string By { get; } = by;

        public long StartStep { get; } = startStep;

        public long EndStep { get; } = endStep;

        /// <summary>Whether the oracle has read it back whole.</summary>
        public bool ReadBack { get; set; }

        /// <summary>The source instance and version it held, once read back.</summary>
        public (string Instance, int Version)? Content { get; set; }

        public override string ToString() => $"{Describe(Point)}, completed {Point.CompletedAt:MM-dd HH:mm:ss}, reported by {By} (steps {StartStep}-{EndStep})";
    }

    /// <summary>A reset, with when it ended and how: the points it may have deleted are not expected any more.</summary>
    private sealed class ResetAttempt(Backup backup, long startStep)
    {
        private readonly object _lock = new();
        private long? _endStep;
        private Exception? _error;
        private bool _ended;

        public Backup Backup { get; } = backup;

        public long StartStep { get; } = startStep;

        public void End(long step, Exception? error)
        {
            lock (_lock)
            {
                _endStep = step;
                _error = error;
                _ended = true;
            }
        }

        /// <summary>Whether it is still running (or its process died in it without saying).</summary>
        public bool Running
        {
            get
            {
                lock (_lock)
                {
                    return !_ended;
                }
            }
        }

        public bool Succeeded
        {
            get
            {
                lock (_lock)
                {
                    return _ended && _error is null;
                }
            }
        }

        /// <summary>Whether it may have deleted points that existed at <paramref name="step"/> or later.</summary>
        public bool MayHaveDeletedAfter(long step)
        {
            lock (_lock)
            {
                if (_ended && _endStep < step)
                {
                    return false;
                }

                // A refusal before any deletion (another writer holds the lease; the lifecycle refuses) deletes nothing.
                return _error is not BackupException { } refused || !(refused.Code == BackupErrorCode.LeaseHeld ||
                    refused.Code == BackupErrorCode.BackupNotEnabled || refused.Code == BackupErrorCode.OperationNotSupported ||
                    refused.Code == BackupErrorCode.BackupExpired || refused.Code == BackupErrorCode.BackupReleased);
            }
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
