package io.moemesh.gateway.placement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.EvenPlacement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import com.google.protobuf.util.JsonFormat;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.stream.IntStream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.slf4j.LoggerFactory;

/**
 * The placement file's epoch rules on real files and a fake clock: only a higher epoch replaces the placement in
 * force, anything else (older, equal, unparseable, not fitting the model, deleted) leaves the last good one
 * serving and is logged; the file is checked at most once per poll interval.
 */
class FilePlacementSourceTest {
    private static final int LAYERS = 2;
    private static final int EXPERTS = 4;
    private static final Duration POLL = Duration.ofSeconds(10);

    @TempDir
    Path dir;
    private Path file;
    private final FakeClock clock = new FakeClock();
    private final ListAppender<ILoggingEvent> logged = new ListAppender<>();
    private final Logger logger = (Logger) LoggerFactory.getLogger(FilePlacementSource.class);

    /** A nano clock that moves only when the test moves it (in milliseconds, from {@code origin}). */
    private static final class FakeClock implements LongSupplier {
        long millis = 1_000_000;
        /** Where nano time 0 of the test is: nano times may be anywhere, negative or about to wrap around. */
        long origin;

        @Override
        public long getAsLong() {
            return origin + millis * 1_000_000;
        }
    }

    @BeforeEach
    void setUp() {
        file = dir.resolve("placement.json");
        logged.start();
        logger.addAppender(logged);
    }

    @AfterEach
    void tearDown() {
        logger.detachAppender(logged);
    }

    /** A placement of the test model's 2 layers × 4 experts on {@code instances} instances. */
    private static Placement placement(long epoch, int instances) {
        return placement(epoch, instances, LAYERS, EXPERTS);
    }

    private static Placement placement(long epoch, int instances, int layers, int experts) {
        List<Instance> ins = IntStream.range(0, instances).mapToObj(i -> Instance.newBuilder().setId("expert-" + i)
                .setEndpoint("127.0.0.1:" + (9100 + i)).build()).toList();
        return EvenPlacement.build(epoch, ins, layers, experts, false, 1);
    }

    private FilePlacementSource source() {
        return new FilePlacementSource(file, LAYERS, EXPERTS, POLL, clock);
    }

    /** Checks the file as the engine thread does: once the poll interval has passed. */
    private PlacementTable afterPoll(FilePlacementSource s) {
        clock.millis += POLL.toMillis();
        return s.current().orElseThrow();
    }

    /** Replaces the file by rename, as {@link PlacementFiles#write} does, with text that need not be a placement. */
    private void writeRaw(String text) throws IOException {
        Path tmp = Files.createTempFile(dir, "placement", ".tmp");
        Files.writeString(tmp, text, StandardCharsets.UTF_8);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    private List<String> messages(Level level) {
        return logged.list.stream().filter(e -> e.getLevel() == level).map(ILoggingEvent::getFormattedMessage).toList();
    }

    @Test
    void higherEpoch_replacesThePlacement_atTheNextPoll() {
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(1);

        PlacementFiles.write(file, placement(2, 3));
        PlacementTable t = afterPoll(s);
        assertThat(t.epoch()).isEqualTo(2);
        assertThat(t.instances()).hasSize(3);
        assertThat(messages(Level.INFO)).containsExactly(file + ": placement epoch 1 → 2");
    }

    @Test
    void olderEpoch_ignored_andLogged() {
        PlacementFiles.write(file, placement(5, 2));
        FilePlacementSource s = source();
        PlacementFiles.write(file, placement(4, 3));
        PlacementTable t = afterPoll(s);
        assertThat(t.epoch()).isEqualTo(5);
        assertThat(t.instances()).hasSize(2);
        assertThat(messages(Level.WARN)).containsExactly(file + ": epoch 4 is older than the current 5; ignored");
    }

    @Test
    void equalEpoch_withOtherContents_ignored_andLogged() {
        PlacementFiles.write(file, placement(3, 2));
        FilePlacementSource s = source();
        PlacementFiles.write(file, placement(3, 3));
        PlacementTable t = afterPoll(s);
        assertThat(t.epoch()).isEqualTo(3);
        assertThat(t.instances()).hasSize(2);
        assertThat(messages(Level.WARN)).containsExactly(file + ": epoch 3 is the current epoch with other contents; "
                + "ignored (a new placement needs a higher epoch)");
    }

    @Test
    void equalEpoch_sameContentsRewritten_ignoredSilently() {
        PlacementFiles.write(file, placement(3, 2));
        FilePlacementSource s = source();
        PlacementFiles.write(file, placement(3, 2));
        assertThat(afterPoll(s).epoch()).isEqualTo(3);
        assertThat(logged.list).isEmpty();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"{not json", "", "{\"epoch\": \"seven\"}", "{\"unknownField\": 1}"})
    void unparseableFile_keepsTheLastGoodPlacement_andLogsWhy(String text) throws IOException {
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();
        writeRaw(text);
        assertThat(afterPoll(s).epoch()).isEqualTo(1);
        assertThat(messages(Level.ERROR)).singleElement().asString()
                .startsWith("keeping placement epoch 1: " + file + ": not a moemesh.router.v1.Placement in JSON");

        PlacementFiles.write(file, placement(2, 2));
        assertThat(afterPoll(s).epoch()).as("a good file after a bad one is read").isEqualTo(2);
    }

    @Test
    void fileThatDoesNotFitTheModel_keepsTheLastGoodPlacement_evenWithAHigherEpoch() {
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();

        PlacementFiles.write(file, placement(2, 2, LAYERS + 1, EXPERTS));
        assertThat(afterPoll(s).epoch()).isEqualTo(1);
        PlacementFiles.write(file, placement(3, 2, LAYERS, EXPERTS - 1));
        assertThat(afterPoll(s).epoch()).isEqualTo(1);
        assertThat(messages(Level.ERROR)).containsExactly(
                "keeping placement epoch 1: " + file + ": placement epoch 2: layer 2 does not exist (model has 2)",
                "keeping placement epoch 1: " + file + ": placement epoch 3: layer 0 expert 3 is not placed");
    }

    @Test
    void deletedFile_keepsTheLastPlacement_untilANewOneAppears() throws IOException {
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();
        Files.delete(file);
        assertThat(afterPoll(s).epoch()).isEqualTo(1);
        assertThat(afterPoll(s).epoch()).isEqualTo(1);

        PlacementFiles.write(file, placement(2, 2));
        assertThat(afterPoll(s).epoch()).isEqualTo(2);
    }

    @Test
    void fileIsCheckedAtMostOncePerPollInterval_countedFromTheLastCheck() {
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();
        PlacementFiles.write(file, placement(2, 2));
        clock.millis += POLL.toMillis() - 1;
        assertThat(s.current().orElseThrow().epoch()).as("before the interval ends").isEqualTo(1);
        clock.millis += 1;
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(2);

        // The next check is one interval after this one, however long the engine went without asking.
        clock.millis += 3 * POLL.toMillis() + 500;
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(2);
        PlacementFiles.write(file, placement(3, 2));
        clock.millis += POLL.toMillis() - 1;
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(2);
        clock.millis += 1;
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(3);
    }

    /**
     * The interval is measured on a monotonic nano clock, compared by difference: a clock about to wrap around keeps
     * the checks going (a wall clock stepped back would have stopped them for as long as the step).
     */
    @Test
    void pollInterval_onANanoClockThatWrapsAround_stillChecksOncePerInterval() {
        clock.origin = Long.MAX_VALUE - clock.millis * 1_000_000 - POLL.toNanos() / 2;
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();
        PlacementFiles.write(file, placement(2, 2));
        clock.millis += 1;
        assertThat(s.current().orElseThrow().epoch()).as("the next check's time has wrapped, now has not").isEqualTo(1);
        clock.millis += POLL.toMillis() - 2;
        assertThat(s.current().orElseThrow().epoch()).as("before the interval ends").isEqualTo(1);
        clock.millis += 1;
        assertThat(clock.getAsLong()).as("the clock wrapped around").isNegative();
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(2);
        PlacementFiles.write(file, placement(3, 2));
        clock.millis += POLL.toMillis();
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(3);
    }

    @Test
    void reloadIfChanged_readsAtOnce_withoutWaitingForThePoll() {
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();
        PlacementFiles.write(file, placement(2, 2));
        assertThat(s.reloadIfChanged().epoch()).isEqualTo(2);
        assertThat(s.current().orElseThrow().epoch()).isEqualTo(2);
    }

    /**
     * Linux file timestamps move in ticks of a few milliseconds: a router that writes a new epoch right after the
     * gateway read the file leaves the time unchanged (set back by hand here, so the test does not depend on
     * timing). The new file must still be read.
     */
    @Test
    void newFileWithTheSameModificationTime_isStillRead() throws IOException {
        PlacementFiles.write(file, placement(1, 2));
        FileTime before = Files.getLastModifiedTime(file);
        FilePlacementSource s = source();

        PlacementFiles.write(file, placement(2, 2));
        Files.setLastModifiedTime(file, before);
        assertThat(afterPoll(s).epoch()).as("replaced by rename").isEqualTo(2);

        FileTime now = Files.getLastModifiedTime(file);
        Files.writeString(file, PlacementFiles.toJson(placement(3, 3)), StandardCharsets.UTF_8);
        Files.setLastModifiedTime(file, now);
        assertThat(afterPoll(s).epoch()).as("rewritten in place").isEqualTo(3);
    }

    @Test
    void missingFileAtStart_failsNamingTheFile() {
        assertThatThrownBy(this::source).isInstanceOf(IllegalArgumentException.class)
                .hasMessage(file + ": placement file not found (nor placement.json.gz)");
    }

    /** The gzip of a placement's compact JSON: what the router's ConfigMap holds under binaryData placement.json.gz. */
    private static byte[] gzip(Placement p) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(JsonFormat.printer().omittingInsignificantWhitespace().print(p).getBytes(StandardCharsets.UTF_8));
        }
        return out.toByteArray();
    }

    /** Replaces {@code target} by rename with {@code bytes}. */
    private void writeBytes(Path target, byte[] bytes) throws IOException {
        Path tmp = Files.createTempFile(dir, "placement", ".tmp");
        Files.write(tmp, bytes);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    @Test
    void largePlacement_mountedAsPlacementJsonGz_only_isRead_equalToTheOriginal() throws IOException {
        // 80 layers × 256 experts on 64 instances, in the form the router writes past its gzip threshold.
        Placement large = placement(3, 64, 80, 256);
        writeBytes(dir.resolve("placement.json.gz"), gzip(large));
        assertThat(Files.exists(file)).isFalse();

        FilePlacementSource s = new FilePlacementSource(file, 80, 256, POLL, clock);

        assertThat(FilePlacementSource.read(dir.resolve("placement.json.gz"))).isEqualTo(large);
        PlacementTable t = s.current().orElseThrow();
        assertThat(t.epoch()).isEqualTo(3);
        assertThat(t.instances()).hasSize(64);
    }

    @Test
    void gzipContent_isDetectedByItsMagicBytes_whateverTheFileName() throws IOException {
        writeBytes(file, gzip(placement(4, 2)));
        assertThat(source().current().orElseThrow().epoch()).isEqualTo(4);
    }

    @Test
    void routerSwitchingFromPlainToGzip_theNewFormIsReadAtTheNextPoll() throws IOException {
        PlacementFiles.write(file, placement(1, 2));
        FilePlacementSource s = source();
        // The kubelet swaps a ConfigMap volume's files at once: placement.json goes, placement.json.gz comes.
        writeBytes(dir.resolve("placement.json.gz"), gzip(placement(2, 3)));
        Files.delete(file);
        assertThat(afterPoll(s).epoch()).isEqualTo(2);
        // And back.
        PlacementFiles.write(file, placement(3, 2));
        Files.delete(dir.resolve("placement.json.gz"));
        assertThat(afterPoll(s).epoch()).isEqualTo(3);
    }

    @Test
    void bothForms_theHigherEpochServes_whicheverFormItIs() throws IOException {
        PlacementFiles.write(file, placement(5, 2));
        writeBytes(dir.resolve("placement.json.gz"), gzip(placement(6, 3)));
        assertThat(source().current().orElseThrow().epoch()).isEqualTo(6);
    }

    @Test
    void corruptGzip_keepsTheLastGoodPlacement_andLogsWhy() throws IOException {
        writeBytes(dir.resolve("placement.json.gz"), gzip(placement(1, 2)));
        FilePlacementSource s = new FilePlacementSource(file, LAYERS, EXPERTS, POLL, clock);
        byte[] broken = Arrays.copyOf(gzip(placement(2, 2)), 20);
        writeBytes(dir.resolve("placement.json.gz"), broken);
        assertThat(afterPoll(s).epoch()).isEqualTo(1);
        assertThat(messages(Level.ERROR)).singleElement().asString()
                .startsWith("keeping placement epoch 1: " + dir.resolve("placement.json.gz")
                        + ": starts like gzip but does not decompress");
    }

    @Test
    void unparseableFileAtStart_failsNamingTheFile() throws IOException {
        Files.writeString(file, "{not json");
        assertThatThrownBy(this::source).isInstanceOf(IllegalArgumentException.class)
                .hasMessageStartingWith(file + ": not a moemesh.router.v1.Placement in JSON");
    }

    @Test
    void fileWithoutAnEpoch_failsAtStartNamingTheEpoch_andIsNeverServedNextToARouter() {
        PlacementFiles.write(file, placement(1, 2).toBuilder().clearEpoch().build());
        assertThatThrownBy(this::source).isInstanceOf(IllegalArgumentException.class)
                .hasMessage(file + ": placement epoch 0: epoch must be ≥ 1 (a missing epoch reads as 0)");
        FilePlacementSource optional = FilePlacementSource.optional(file, LAYERS, EXPERTS, POLL, clock);
        assertThat(optional.current()).as("an epoch-0 placement would make ExpertBatch skip the epoch check").isEmpty();
    }

    @Test
    void fileThatDoesNotFitTheModelAtStart_failsNamingTheFileAndWhatDoesNotFit() {
        PlacementFiles.write(file, placement(1, 2, LAYERS, EXPERTS + 1));
        assertThatThrownBy(this::source).isInstanceOf(IllegalArgumentException.class)
                .hasMessage(file + ": placement epoch 1: layer 0 expert 4 does not exist (model has 4 dispatchable "
                        + "experts)");
    }
}
