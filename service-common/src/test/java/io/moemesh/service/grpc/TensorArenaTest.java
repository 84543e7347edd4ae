package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.google.protobuf.ByteString;
import io.moemesh.proto.common.v1.ArenaRegion;
import io.moemesh.proto.common.v1.DType;
import io.moemesh.proto.common.v1.Tensor;
import io.moemesh.proto.expert.v1.ExpertBatchRequest;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The shared-memory arena: what goes into a slot comes out with the bits of the in-message encoding, only files
 * that are arenas of this uid are mapped, only whole slots are read or written, slots run out instead of being
 * shared, and the marshaller carries a region instead of data.
 */
class TensorArenaTest {
    @TempDir
    Path dir;

    private static int ownUid() throws Exception {
        return (Integer) Files.getAttribute(Path.of("/proc/self"), "unix:uid");
    }

    @AfterEach
    void everyChunkReturned() {
        assertThat(HopBufferPool.shared().outstanding()).isZero();
    }

    /** Gaussian floats (as the marshaller's tests use) with the special values first. */
    private static float[] floats(int n, long seed) {
        float[] x = TensorMessageMarshallerTest.floats(n, seed);
        x[0] = Float.NaN;
        x[1] = Float.NEGATIVE_INFINITY;
        x[2] = -0f;
        x[3] = Float.MIN_VALUE;
        return x;
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"DTYPE_F32", "DTYPE_BF16"})
    void writeThenReadOnTheOtherMapping_sameBitsAsTheMessageEncoding(DType dtype) throws Exception {
        // n past one conversion chunk (16 Ki elements), so the bf16 loop's chunk boundary is crossed
        int n = 40_000;
        float[] x = floats(n, 5);
        TensorArena writer = TensorArena.create(dir, 2, 256 * 1024);
        TensorArena reader = TensorArena.open(writer.path().toString(), ownUid());
        TensorArena.Region r = writer.write(1, x, n, dtype);
        assertThat(r).isEqualTo(new TensorArena.Region(TensorArena.HEADER_BYTES + 256 * 1024,
                (long) n * TensorCodec.elementBytes(dtype), 256 * 1024));
        float[] expected = new float[n];
        TensorCodec.decode(TensorCodec.encode(x, 0, 1, n, dtype), "x", 1, n, expected, 0);
        float[] got = reader.read(r, dtype, n);
        for (int i = 0; i < n; i++) {
            assertThat(Float.floatToRawIntBits(got[i])).as("element %d", i).isEqualTo(Float.floatToRawIntBits(expected[i]));
        }
    }

    @Test
    void slots_runOut_andComeBack_neverHandedOutTwice() {
        TensorArena a = TensorArena.create(dir, 3, 4096);
        List<Integer> taken = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            taken.add(a.take().orElseThrow());
        }
        assertThat(taken).containsExactlyInAnyOrder(0, 1, 2);
        assertThat(a.take()).isEqualTo(OptionalInt.empty());
        assertThat(a.slotsInUse()).isEqualTo(3);
        a.give(1);
        assertThat(a.take()).isEqualTo(OptionalInt.of(1));
        taken.forEach(a::give);
        assertThat(a.slotsInUse()).isZero();
        assertThatThrownBy(() -> a.give(3)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void unlink_removesTheFile_whileBothMappingsStillWork() throws Exception {
        TensorArena writer = TensorArena.create(dir, 1, 4096);
        TensorArena reader = TensorArena.open(writer.path().toString(), ownUid());
        writer.unlink();
        assertThat(writer.path()).doesNotExist();
        TensorArena.Region r = writer.write(0, new float[] {1.5f, -2f}, 2, DType.DTYPE_F32);
        assertThat(reader.read(r, DType.DTYPE_F32, 2)).containsExactly(1.5f, -2f);
    }

    static Stream<Arguments> notRegions() {
        long h = TensorArena.HEADER_BYTES;
        return Stream.of(
                Arguments.of(new TensorArena.Region(0, 8, 4096), "is not the start of a slot"),
                Arguments.of(new TensorArena.Region(h + 4, 8, 4096), "is not the start of a slot"),
                Arguments.of(new TensorArena.Region(h + 2 * 4096, 8, 4096), "is not the start of a slot"),
                Arguments.of(new TensorArena.Region(-1, 8, 4096), "is not the start of a slot"),
                Arguments.of(new TensorArena.Region(h, 8, 8192), "in a slot of 8192"),
                Arguments.of(new TensorArena.Region(h, 4100, 4096), "region of 4100 bytes"),
                Arguments.of(new TensorArena.Region(h, -8, 4096), "region of 18446744073709551608 bytes"));
    }

    @ParameterizedTest
    @MethodSource("notRegions")
    void read_ofARegionThatIsNotASlot_isRefusedWithWhy(TensorArena.Region r, String why) {
        TensorArena a = TensorArena.create(dir, 2, 4096);
        assertThatThrownBy(() -> a.read(r, DType.DTYPE_F32, 2)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(why);
    }

    @Test
    void read_ofALengthThatIsNotTheShape_isRefused() {
        TensorArena a = TensorArena.create(dir, 1, 4096);
        TensorArena.Region r = a.write(0, new float[4], 4, DType.DTYPE_F32);
        assertThatThrownBy(() -> a.read(r, DType.DTYPE_F32, 3)).hasMessageContaining("region of 16 bytes for 3");
        assertThatThrownBy(() -> a.read(r, DType.DTYPE_I32, 4)).hasMessageContaining("F32 or BF16");
    }

    private Path file(String name, byte[] content) throws Exception {
        return Files.write(dir.resolve(name), content);
    }

    private static byte[] header(int slots, long slotBytes, int size) {
        ByteBuffer b = ByteBuffer.allocate(size).order(ByteOrder.nativeOrder());
        b.put(TensorArena.MAGIC);
        b.putInt(16, slots);
        b.putLong(24, slotBytes);
        return b.array();
    }

    @Test
    void open_mapsOnlyAnArenaOfThisUid_sayingWhyNot() throws Exception {
        int uid = ownUid();
        int size = TensorArena.HEADER_BYTES + 4096;
        assertThatThrownBy(() -> TensorArena.open("moemesh-arena-1.shm", uid)).hasMessageContaining("not an absolute path");
        Path wrongName = file("weights.safetensors", header(1, 4096, size));
        assertThatThrownBy(() -> TensorArena.open(wrongName.toString(), uid)).hasMessageContaining("moemesh-arena-*.shm");
        Path ok = file("moemesh-arena-ok.shm", header(1, 4096, size));
        assertThat(TensorArena.open(ok.toString(), uid).slots()).isEqualTo(1);
        assertThatThrownBy(() -> TensorArena.open(ok.toString(), uid + 1))
                .hasMessageContaining("belongs to uid " + uid + ", not to this server's uid " + (uid + 1));
        Path link = Files.createSymbolicLink(dir.resolve("moemesh-arena-link.shm"), ok);
        assertThatThrownBy(() -> TensorArena.open(link.toString(), uid)).hasMessageContaining("not a regular file");
        Path missing = dir.resolve("moemesh-arena-gone.shm");
        assertThatThrownBy(() -> TensorArena.open(missing.toString(), uid)).hasMessageContaining("not a regular file");
        byte[] garbage = header(1, 4096, size);
        garbage[0] = 'X';
        Path notAnArena = file("moemesh-arena-garbage.shm", garbage);
        assertThatThrownBy(() -> TensorArena.open(notAnArena.toString(), uid)).hasMessageContaining("arena header");
        Path lying = file("moemesh-arena-lying.shm", header(2, 4096, size));
        assertThatThrownBy(() -> TensorArena.open(lying.toString(), uid))
                .hasMessageContaining("header says 2 slots of 4096 bytes, the file holds " + size);
        // 4 × (2^62 + 1024) overflows to exactly the 4096 bytes after the header: still not a layout
        Path overflowing = file("moemesh-arena-overflow.shm", header(4, (1L << 62) + 1024, size));
        assertThatThrownBy(() -> TensorArena.open(overflowing.toString(), uid)).hasMessageContaining("header says 4 slots");
        Path tiny = file("moemesh-arena-tiny.shm", new byte[100]);
        assertThatThrownBy(() -> TensorArena.open(tiny.toString(), uid)).hasMessageContaining("holds 100 bytes");
    }

    @Test
    void create_refusesAnImpossibleLayout() {
        assertThatThrownBy(() -> TensorArena.create(dir, 0, 4096)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TensorArena.create(dir, 1, 1024)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TensorArena.create(dir, 1 << 20, 1 << 20)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TensorArena.create(dir.resolve("no/such/dir"), 1, 4096))
                .isInstanceOf(java.io.UncheckedIOException.class);
    }

    // --- the marshaller with regions ---

    private static final TensorMessageMarshaller<ExpertBatchRequest> REQUESTS =
            new TensorMessageMarshaller<>(ExpertBatchRequest.getDefaultInstance(), ExpertBatchRequest.ACTIVATIONS_FIELD_NUMBER);

    private static byte[] drain(TensorMessage<ExpertBatchRequest> m) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ((io.grpc.Drainable) REQUESTS.stream(m)).drainTo(out);
        return out.toByteArray();
    }

    @Test
    void marshaller_sendsTheRegionInsteadOfData_asTheGeneratedMessageReadsIt_andResolveReadsTheSlot() throws Exception {
        TensorArena a = TensorArena.create(dir, 2, 4096);
        float[] x = floats(6, 9);
        ExpertBatchRequest head = ExpertBatchRequest.newBuilder().setBatchId(4).setLayer(1).addTokenExpertCounts(1)
                .addTokenExpertCounts(0).addExperts(3).addWeights(1f).build();
        TensorMessage<ExpertBatchRequest> sent = TensorMessage.inArena(head, a.write(1, x, 6, DType.DTYPE_F32), 2, 3,
                DType.DTYPE_F32);
        byte[] wire = drain(sent);
        ExpertBatchRequest generated = ExpertBatchRequest.parseFrom(wire);
        assertThat(generated.getActivations().getData()).isEqualTo(ByteString.EMPTY);
        assertThat(generated.getActivations().getShapeList()).containsExactly(2L, 3L);
        assertThat(generated.getActivations().getRegion()).isEqualTo(ArenaRegion.newBuilder()
                .setOffsetBytes(TensorArena.HEADER_BYTES + 4096).setLengthBytes(24).setCapacityBytes(4096).build());
        assertThat(wire.length).isLessThan(100);
        TensorMessage<ExpertBatchRequest> got = REQUESTS.parse(new ByteArrayInputStream(wire));
        assertThat(got.region()).isEqualTo(sent.region());
        assertThat(got.header()).isEqualTo(head);
        assertThat(got.resolve("activations", a).floats("activations", 2, 3)).containsExactly(x);
        assertThatThrownBy(() -> got.floats("activations", 2, 3)).hasMessageContaining("arena region not read");
        assertThatThrownBy(() -> got.resolve("activations", null))
                .hasMessageContaining("activations: the tensor names an arena region, but this stream has no shared-memory arena");
    }

    @Test
    void aTensorWithBothDataAndARegion_orARegionPastItsSlot_isThatMessagesError() throws Exception {
        TensorArena a = TensorArena.create(dir, 1, 4096);
        Tensor both = Tensor.newBuilder().setDtype(DType.DTYPE_F32).addShape(1).addShape(2)
                .setData(ByteString.copyFrom(new byte[8])).setRegion(ArenaRegion.newBuilder()
                        .setOffsetBytes(TensorArena.HEADER_BYTES).setLengthBytes(8).setCapacityBytes(4096)).build();
        TensorMessage<ExpertBatchRequest> m = REQUESTS.parse(new ByteArrayInputStream(
                ExpertBatchRequest.newBuilder().setActivations(both).build().toByteArray()));
        assertThatThrownBy(() -> m.resolve("activations", a)).hasMessageContaining("both data and an arena region");
        Tensor past = both.toBuilder().clearData().setRegion(both.getRegion().toBuilder().setOffsetBytes(1 << 20)).build();
        TensorMessage<ExpertBatchRequest> p = REQUESTS.parse(new ByteArrayInputStream(
                ExpertBatchRequest.newBuilder().setActivations(past).build().toByteArray()));
        assertThatThrownBy(() -> p.resolve("activations", a))
                .hasMessageContaining("activations: region offset 1048576 is not the start of a slot");
        Tensor wrongShape = both.toBuilder().clearData().clearShape().addShape(3).addShape(2).build();
        TensorMessage<ExpertBatchRequest> w = REQUESTS.parse(new ByteArrayInputStream(
                ExpertBatchRequest.newBuilder().setActivations(wrongShape).build().toByteArray()));
        assertThatThrownBy(() -> w.resolve("activations", a)).hasMessageContaining("region of 8 bytes for 6 DTYPE_F32");
    }
}
