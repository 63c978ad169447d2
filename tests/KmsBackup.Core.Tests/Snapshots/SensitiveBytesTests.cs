namespace KmsBackup.Tests.Snapshots;

/// <summary>Sensitive bytes leave no copy behind that their holder cannot zero (issue 13, finding 6).</summary>
public class SensitiveBytesTests
{
    [Fact]
    public void Own_takes_the_bytes_and_leaves_the_given_array_zeroed()
    {
        byte[] given = [1, 2, 3, 4];

        var taken = SensitiveBytes.Own(given);

        Assert.Equal([1, 2, 3, 4], taken.Span.ToArray());
        Assert.All(given, b => Assert.Equal(0, b));
    }

    [Fact]
    public void Clear_zeroes_the_only_copy()
    {
        byte[] source = [5, 6, 7];
        var copy = SensitiveBytes.Copy(source);

        copy.Clear();

        Assert.All(copy.Span.ToArray(), b => Assert.Equal(0, b));
        Assert.Equal([5, 6, 7], source);
    }

    [Fact]
    public void A_pooled_buffer_is_zeroed_when_it_is_returned()
    {
        var buffer = SensitiveBufferPool.Rent(5000);
        Assert.True(buffer.Length >= 5000);
        buffer.AsSpan().Fill(0xAB);

        SensitiveBufferPool.Return(buffer);

        Assert.All(buffer, b => Assert.Equal(0, b));
    }
}
