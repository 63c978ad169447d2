using System.Collections.Concurrent;
using System.IO.Abstractions;
using System.Reflection;
using System.Runtime.ExceptionServices;

namespace KmsBackup.Tests.Storage;

/// <summary>
/// An <see cref="IFileSystem"/> decorator that fails the k-th write operation with an <see cref="IOException"/>,
/// and, when <see cref="StickyFailure"/> is set, every write after it, as if the process had crashed there.
/// Crash tests run an operation sequence once per k, then reopen the inner file system and check what survived.
/// </summary>
/// <remarks>
/// <para>Write operations, counted from 1 in the order they happen: opening a file stream that creates or
/// writes (<see cref="IFileStreamFactory"/>, <c>File.Open/Create/OpenWrite</c>...), every <c>Write</c>,
/// <c>WriteByte</c>, <c>Flush</c> and <c>SetLength</c> on such a stream, and the <see cref="IFile"/> and
/// <see cref="IDirectory"/> calls that change something (<c>Move</c>, <c>Delete</c>, <c>Copy</c>,
/// <c>Replace</c>, <c>CreateDirectory</c>, <c>WriteAll*</c>, <c>AppendAll*</c>, <c>Set*</c>...).</para>
/// <para>A failing stream write is torn: the first half of its bytes reach the file before the exception,
/// as they may when a process dies mid-write. Other failing operations do nothing.</para>
/// <para>Not intercepted: <see cref="IFileInfo"/>/<see cref="IDirectoryInfo"/> instances (their writes
/// are not counted) and <see cref="IRandomAccess"/>. Reads always pass through.</para>
/// </remarks>
public sealed class FaultyFileSystem : IFileSystem
{
    private static readonly string[] s_writeVerbs =
        ["Append", "Copy", "Create", "Decrypt", "Delete", "Encrypt", "Move", "Replace", "Set", "Write", "OpenWrite"];

    private readonly ConcurrentQueue<string> _log = new();
    private int _writes;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">The file system that does the work.</param>
    /// <param name="failAt">The write operation to fail, counted from 1; 0 fails none.</param>
    /// <param name="stickyFailure">Whether every write after the failed one fails too (a crash).</param>
    public FaultyFileSystem(IFileSystem inner, int failAt = 0, bool stickyFailure = true)
    {
        ArgumentNullException.ThrowIfNull(inner);
        Inner = inner;
        FailAt = failAt;
        StickyFailure = stickyFailure;
        File = FaultyProxy<IFile>.Create(inner.File, this);
        Directory = FaultyProxy<IDirectory>.Create(inner.Directory, this);
        FileStream = FaultyProxy<IFileStreamFactory>.Create(inner.FileStream, this);
    }

    /// <summary>The wrapped file system: what a restarted process would see.</summary>
    public IFileSystem Inner { get; }

    /// <summary>The write operation to fail, counted from 1; 0 fails none.</summary>
    public int FailAt { get; set; }

    /// <summary>Whether every write after the failed one fails too.</summary>
    public bool StickyFailure { get; set; }

    /// <summary>How many write operations were attempted (failed ones included).</summary>
    public int WriteCount => Volatile.Read(ref _writes);

    /// <summary>Whether a write has failed.</summary>
    public bool HasFailed => FailAt > 0 && WriteCount >= FailAt;

    /// <summary>Every write operation attempted, numbered, with its path: what to print when a crash test fails.</summary>
    public IReadOnlyCollection<string> Log => _log;

    /// <inheritdoc />
    public IFile File { get; }

    /// <inheritdoc />
    public IDirectory Directory { get; }

    /// <inheritdoc />
    public IFileStreamFactory FileStream { get; }

    /// <inheritdoc />
    public IFileInfoFactory FileInfo => Inner.FileInfo;

    /// <inheritdoc />
    public IDirectoryInfoFactory DirectoryInfo => Inner.DirectoryInfo;

    /// <inheritdoc />
    public IDriveInfoFactory DriveInfo => Inner.DriveInfo;

    /// <inheritdoc />
    public IPath Path => Inner.Path;

    /// <inheritdoc />
    public IFileSystemWatcherFactory FileSystemWatcher => Inner.FileSystemWatcher;

    /// <inheritdoc />
    public IFileVersionInfoFactory FileVersionInfo => Inner.FileVersionInfo;

    /// <inheritdoc />
    public IRandomAccess RandomAccess => Inner.RandomAccess;

    /// <summary>Counts a write operation; returns whether it must fail.</summary>
    internal bool Fails(string operation, string? path)
    {
        var number = Interlocked.Increment(ref _writes);
        var failAt = FailAt;
        var fails = failAt > 0 && (number == failAt || (StickyFailure && number > failAt));
        _log.Enqueue($"#{number} {operation} {path}{(fails ? " -> injected fault" : string.Empty)}");
        return fails;
    }

    internal static IOException Fault(string operation, string? path) =>
        new($"Injected fault: {operation} '{path}' failed.");

    internal static bool IsWrite(MethodInfo method, object?[]? args)
    {
        var name = method.Name;
        if (method.DeclaringType == typeof(IFileStreamFactory))
        {
            return name == "New" && OpensForWriting(args);
        }

        if (name.StartsWith("Open", StringComparison.Ordinal) && name != "OpenWrite")
        {
            return OpensForWriting(args); // Open, OpenRead, OpenText, OpenHandle
        }

        return s_writeVerbs.Any(verb => name.StartsWith(verb, StringComparison.Ordinal));
    }

    private static bool OpensForWriting(object?[]? args)
    {
        FileMode? mode = null;
        FileAccess? access = null;
        foreach (var arg in args ?? [])
        {
            switch (arg)
            {
                case FileMode m:
                    mode = m;
                    break;
                case FileAccess a:
                    access = a;
                    break;
                case FileStreamOptions options:
                    mode = options.Mode;
                    access = options.Access;
                    break;
            }
        }

        if (mode is null)
        {
            return false; // a handle, or OpenRead/OpenText
        }

        return mode != FileMode.Open || (access ?? FileAccess.ReadWrite).HasFlag(FileAccess.Write);
    }
}

/// <summary>Forwards every call of <typeparamref name="T"/> to the inner object, failing writes as the owner says.</summary>
#pragma warning disable CA1852 // DispatchProxy needs a type it can derive from.
internal class FaultyProxy<T> : DispatchProxy
#pragma warning restore CA1852
    where T : class
{
    private T _inner = null!;
    private FaultyFileSystem _owner = null!;

    public static T Create(T inner, FaultyFileSystem owner)
    {
        var proxy = DispatchProxy.Create<T, FaultyProxy<T>>();
        var self = (FaultyProxy<T>)(object)proxy;
        self._inner = inner;
        self._owner = owner;
        return proxy;
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        ArgumentNullException.ThrowIfNull(targetMethod);
        if (FaultyFileSystem.IsWrite(targetMethod, args))
        {
            var path = args is { Length: > 0 } ? args[0] as string : null;
            var operation = $"{typeof(T).Name}.{targetMethod.Name}";
            if (_owner.Fails(operation, path))
            {
                throw FaultyFileSystem.Fault(operation, path);
            }
        }

        object? result;
        try
        {
            result = targetMethod.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            ExceptionDispatchInfo.Throw(ex.InnerException);
            throw;
        }

        return result is FileSystemStream stream and not FaultyStream ? new FaultyStream(stream, _owner) : result;
    }
}

/// <summary>A stream whose writes and flushes count as write operations of a <see cref="FaultyFileSystem"/>.</summary>
internal sealed class FaultyStream(FileSystemStream inner, FaultyFileSystem owner) : FileSystemStream(inner, inner.Name, inner.IsAsync)
{
    public override void Write(byte[] buffer, int offset, int count)
    {
        if (owner.Fails("Stream.Write", Name))
        {
            inner.Write(buffer, offset, count / 2);
            throw FaultyFileSystem.Fault("Stream.Write", Name);
        }

        inner.Write(buffer, offset, count);
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (owner.Fails("Stream.Write", Name))
        {
            inner.Write(buffer[..(buffer.Length / 2)]);
            throw FaultyFileSystem.Fault("Stream.Write", Name);
        }

        inner.Write(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (owner.Fails("Stream.Write", Name))
        {
            await inner.WriteAsync(buffer[..(buffer.Length / 2)], cancellationToken);
            throw FaultyFileSystem.Fault("Stream.Write", Name);
        }

        await inner.WriteAsync(buffer, cancellationToken);
    }

    public override void WriteByte(byte value)
    {
        if (owner.Fails("Stream.WriteByte", Name))
        {
            throw FaultyFileSystem.Fault("Stream.WriteByte", Name);
        }

        inner.WriteByte(value);
    }

    public override IAsyncResult BeginWrite(byte[] buffer, int offset, int count, AsyncCallback? callback, object? state) =>
        TaskToAsyncResult.Begin(WriteAsync(buffer, offset, count, CancellationToken.None), callback, state);

    public override void EndWrite(IAsyncResult asyncResult) => TaskToAsyncResult.End(asyncResult);

    public override void Flush() => Flush(flushToDisk: false);

    public override void Flush(bool flushToDisk)
    {
        if (owner.Fails(flushToDisk ? "Stream.Flush(toDisk)" : "Stream.Flush", Name))
        {
            throw FaultyFileSystem.Fault("Stream.Flush", Name);
        }

        // Straight to the inner stream: the base class would drop flushToDisk for a stream that is not a FileStream.
        inner.Flush(flushToDisk);
    }

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        if (owner.Fails("Stream.FlushAsync", Name))
        {
            return Task.FromException(FaultyFileSystem.Fault("Stream.FlushAsync", Name));
        }

        return inner.FlushAsync(cancellationToken);
    }

    public override void SetLength(long value)
    {
        if (owner.Fails("Stream.SetLength", Name))
        {
            throw FaultyFileSystem.Fault("Stream.SetLength", Name);
        }

        inner.SetLength(value);
    }
}
