using System.Runtime.CompilerServices;
using KmsBackup.Repository;

namespace KmsBackup.Tests.Engine;

/// <summary>
/// A download's payload stream (issue 15, item 5): what the producer writes into the stream's buffer comes out before
/// the piece it yields after it, each piece in place, whatever sizes the reader asks for; and a walk's leaves, opened
/// into one reused buffer, are zeroed once the walk has moved past them.
/// </summary>
public sealed class ProducedStreamTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(64)]
    [InlineData(65536)]
    public async Task Records_come_out_before_the_piece_yielded_after_them_whatever_the_read_size(int readSize)
    {
        var pieces = new[] { Bytes(10, 1), Bytes(0, 0), Bytes(300, 2), Bytes(1, 3) };
        await using var stream = new ProducedStream((buffer, token) => ProduceAsync(buffer, pieces, token));

        var read = await ReadAllAsync(stream, readSize);

        // Each piece i follows the record "i" written before it; the records written after the last piece come with the
        // final empty piece.
        var expected = new List<byte>();
        for (var i = 0; i < pieces.Length; i++)
        {
            expected.Add((byte)(0xA0 + i));
            expected.AddRange(pieces[i]);
        }

        expected.AddRange([0xFE, 0xFF]);
        Assert.Equal(expected, read);
    }

    [Fact]
    public async Task A_stream_whose_producer_yields_nothing_is_empty()
    {
        await using var stream = new ProducedStream((_, token) => NothingAsync(token));

        Assert.Empty(await ReadAllAsync(stream, 16));
    }

    [Fact]
    public void A_plaintext_buffer_keeps_each_object_apart_and_zeroes_what_it_held_when_cleared_or_grown()
    {
        using var crypto = new RepositoryCrypto(Bytes(RepositoryCrypto.MasterSecretSize, 9));
        using var cipher = crypto.CreatePackCipher();
        var objects = new[] { Bytes(100, 1), Bytes(5000, 2), Bytes(0, 0) };
        var ids = objects.Select(o => crypto.IdOf(ObjectRole.KeyLeaf, o)).ToArray();
        var sealedObjects = objects.Select((o, i) =>
        {
            var sealedBytes = new byte[o.Length + RepositoryCrypto.Overhead];
            cipher.SealObject(o, ids[i], ObjectRole.KeyLeaf, sealedBytes);
            return sealedBytes;
        }).ToArray();

        using var buffer = new PlaintextBuffer();
        buffer.Reserve(64);
        buffer.Open(cipher, sealedObjects[0], ids[0], ObjectRole.KeyLeaf);
        var first = buffer[ids[0]];

        // Outgrowing the buffer moves what it holds and zeroes the old copy.
        buffer.Open(cipher, sealedObjects[1], ids[1], ObjectRole.KeyLeaf);
        buffer.Open(cipher, sealedObjects[2], ids[2], ObjectRole.KeyLeaf);
        Assert.All(first.ToArray(), b => Assert.Equal(0, b));
        for (var i = 0; i < objects.Length; i++)
        {
            Assert.Equal(objects[i], buffer[ids[i]].ToArray());
        }

        var held = buffer[ids[1]];
        buffer.Clear();
        Assert.All(held.ToArray(), b => Assert.Equal(0, b));
        Assert.Throws<KeyNotFoundException>(() => buffer[ids[1]]);
    }

    [Fact]
    public void An_object_that_does_not_open_leaves_nothing_in_the_plaintext_buffer()
    {
        using var crypto = new RepositoryCrypto(Bytes(RepositoryCrypto.MasterSecretSize, 9));
        using var cipher = crypto.CreatePackCipher();
        var plain = Bytes(200, 4);
        var id = crypto.IdOf(ObjectRole.SecretLeaf, plain);
        var sealedBytes = new byte[plain.Length + RepositoryCrypto.Overhead];
        cipher.SealObject(plain, id, ObjectRole.SecretLeaf, sealedBytes);

        using var buffer = new PlaintextBuffer();
        buffer.Reserve(plain.Length);

        // Sealed under the right key, but named by another ID: the tag opens only with the ID it was sealed with.
        var other = crypto.IdOf(ObjectRole.SecretLeaf, Bytes(200, 5));
        Assert.Throws<BackupIntegrityException>(() => buffer.Open(cipher, sealedBytes, other, ObjectRole.SecretLeaf));
        Assert.Throws<KeyNotFoundException>(() => buffer[other]);

        buffer.Open(cipher, sealedBytes, id, ObjectRole.SecretLeaf);
        Assert.Equal(plain, buffer[id].ToArray());
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> ProduceAsync(RecordWriter buffer, byte[][] pieces, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        for (var i = 0; i < pieces.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.Yield();
            buffer.WriteByte((byte)(0xA0 + i));
            yield return pieces[i];
        }

        buffer.WriteByte(0xFE);
        buffer.WriteByte(0xFF);
        yield return ReadOnlyMemory<byte>.Empty;
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> NothingAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        cancellationToken.ThrowIfCancellationRequested();
        yield break;
    }

    private static async Task<List<byte>> ReadAllAsync(Stream stream, int readSize)
    {
        var all = new List<byte>();
        var chunk = new byte[readSize];
        int n;
        while ((n = await stream.ReadAsync(chunk)) > 0)
        {
            all.AddRange(chunk.AsSpan(0, n));
        }

        return all;
    }

    private static byte[] Bytes(int length, int seed) => Enumerable.Range(0, length).Select(i => (byte)(i * 31 + seed)).ToArray();
}
