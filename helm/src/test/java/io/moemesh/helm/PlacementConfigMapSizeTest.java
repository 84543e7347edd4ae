package io.moemesh.helm;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.util.JsonFormat;
import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;

/**
 * How big the placement ConfigMap's placement.json gets for a large model, against the API server's limit of
 * 1 MiB of data per ConfigMap (docs/kubernetes.md, "Placement size", quotes these numbers). The reference shape is
 * issue 12's: 256 routed experts × 60 MoE layers on 64 expert-service pods with 25% spare slots filled by
 * replicas (320 expert copies per layer), instance ids as this chart names the pods.
 */
class PlacementConfigMapSizeTest {
    static final int CONFIG_MAP_LIMIT = 1024 * 1024;

    static Placement placement(int experts, int layers, int instances) {
        Placement.Builder p = Placement.newBuilder().setEpoch(123_456);
        for (int i = 0; i < instances; i++) {
            p.addInstances(Instance.newBuilder().setId(podName(i))
                    .setEndpoint("10.244.%d.%d:9100".formatted(i / 200, 10 + i % 200))
                    .setMemoryBudgetBytes(85_899_345_920L));
        }
        int replicated = experts / 4;
        for (int l = 0; l < layers; l++) {
            LayerPlacement.Builder layer = LayerPlacement.newBuilder().setLayer(l);
            int slot = 0;
            for (int e = 0; e < experts; e++) {
                ExpertPlacement.Builder expert = ExpertPlacement.newBuilder().setExpert(e);
                for (int copy = 0; copy < (e < replicated ? 2 : 1); copy++) {
                    expert.addInstanceIds(podName((slot++ + l) % instances));
                }
                layer.addExperts(expert);
            }
            p.addLayers(layer);
        }
        return p.build();
    }

    /**
     * The same shape with every copy on a pseudo-random pod (distinct per expert): as little regularity as a planner's
     * placement can have, so gzip gains least. The capacities documented are measured on this one.
     */
    static Placement shuffled(int experts, int layers, int instances) {
        Random random = new Random(42);
        Placement.Builder p = placement(experts, 0, instances).toBuilder();
        List<Integer> pods = new ArrayList<>(IntStream.range(0, instances).boxed().toList());
        for (int l = 0; l < layers; l++) {
            LayerPlacement.Builder layer = LayerPlacement.newBuilder().setLayer(l);
            for (int e = 0; e < experts; e++) {
                Collections.shuffle(pods, random);
                ExpertPlacement.Builder expert = ExpertPlacement.newBuilder().setExpert(e);
                for (int copy = 0; copy < (e < experts / 4 ? 2 : 1); copy++) {
                    expert.addInstanceIds(podName(pods.get(copy)));
                }
                layer.addExperts(expert);
            }
            p.addLayers(layer);
        }
        return p.build();
    }

    static String podName(int i) {
        return "moemesh-expert-service-" + i;
    }

    @Test
    void referenceLargeModel_fitsTheConfigMapAsCompactJson_butNotPrettyPrinted_andGzipLeavesRoom()
            throws IOException {
        Placement large = placement(256, 60, 64);
        byte[] pretty = JsonFormat.printer().print(large).getBytes(StandardCharsets.UTF_8);
        byte[] compact = JsonFormat.printer().omittingInsignificantWhitespace().print(large)
                .getBytes(StandardCharsets.UTF_8);
        byte[] gzip = gzip(compact);
        System.out.printf("placement 256 x 60 x 64: pretty %d B, compact %d B, gzip %d B, protobuf %d B%n",
                pretty.length, compact.length, gzip.length, large.getSerializedSize());

        assertThat(pretty.length).as("pretty-printed JSON (PlacementFiles.write today)")
                .isGreaterThan(CONFIG_MAP_LIMIT);
        assertThat(compact.length).as("compact JSON").isLessThan(CONFIG_MAP_LIMIT)
                .isGreaterThan(CONFIG_MAP_LIMIT * 9 / 10);
        assertThat(gzip.length).as("gzip of the compact JSON").isLessThan(CONFIG_MAP_LIMIT / 8);
    }

    @Test
    void compactJson_growsWithLayersTimesExpertCopies_notWithInstances() {
        long at64 = compactSize(placement(256, 60, 64));
        long at256 = compactSize(placement(256, 60, 256));
        long halfLayers = compactSize(placement(256, 30, 64));
        System.out.printf("compact: 64 pods %d B, 256 pods %d B, 30 layers %d B%n", at64, at256, halfLayers);
        assertThat(at256).isLessThan(at64 * 11 / 10);
        assertThat(halfLayers).isBetween(at64 * 45 / 100, at64 * 55 / 100);
    }

    /**
     * What the router's default threshold (768 KiB as stored: plain JSON bytes, or the base64 length of the gzip)
     * holds for 256 experts with 25% replicas on 64 pods: 46 layers plain, and gzipped still 480 layers of the
     * least regular placement (docs/kubernetes.md, "Placement size").
     */
    @Test
    void defaultThreshold_holds46LayersPlain_and480LayersGzipped_of256ExpertsOn64Pods() throws IOException {
        int threshold = 768 * 1024;
        assertThat(compactSize(placement(256, 46, 64))).isLessThanOrEqualTo(threshold);
        assertThat(compactSize(placement(256, 47, 64))).isGreaterThan(threshold);
        assertThat(compactSize(shuffled(256, 46, 64))).isLessThanOrEqualTo(threshold);
        Placement deep = shuffled(256, 480, 64);
        long base64 = (gzip(JsonFormat.printer().omittingInsignificantWhitespace().print(deep)
                .getBytes(StandardCharsets.UTF_8)).length + 2) / 3 * 4;
        System.out.printf("shuffled 256 x 480 x 64: compact %d B, gzip in base64 %d B%n", compactSize(deep), base64);
        assertThat(base64).isLessThanOrEqualTo(threshold).isGreaterThan(threshold * 9L / 10);
    }

    private static long compactSize(Placement p) {
        try {
            return JsonFormat.printer().omittingInsignificantWhitespace().print(p)
                    .getBytes(StandardCharsets.UTF_8).length;
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(data);
        }
        return out.toByteArray();
    }
}
