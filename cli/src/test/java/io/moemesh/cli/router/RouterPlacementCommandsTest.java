package io.moemesh.cli.router;

import static org.assertj.core.api.Assertions.assertThat;

import io.moemesh.cli.CliRun;
import io.moemesh.proto.router.v1.ExpertPlacement;
import io.moemesh.proto.router.v1.Instance;
import io.moemesh.proto.router.v1.LayerPlacement;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.router.placement.SyntheticTraces;
import io.moemesh.router.trace.RouteTrace;
import io.moemesh.router.trace.TraceFormat;
import io.moemesh.router.trace.TraceWriter;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class RouterPlacementCommandsTest {
    @TempDir
    Path dir;
    Path train;
    Path test;

    /** A FLAME-style CSV pair (layers 2..4, 16 experts, top-2, 4 groups used together), train then held-out test. */
    @BeforeEach
    void traces() {
        RouteTrace all = SyntheticTraces.clustered(1200, 3, 16, 2, 4, 0.05, 11);
        train = dir.resolve("train.csv");
        test = dir.resolve("test.csv");
        TraceWriter.write(new RouteTrace("train", 2, 3, 16, 2, all.tokens().subList(0, 800)),
                TraceFormat.FLAME_PREFILL_CSV, train);
        TraceWriter.write(new RouteTrace("test", 2, 3, 16, 2, all.tokens().subList(800, 1200)),
                TraceFormat.FLAME_PREFILL_CSV, test);
    }

    @Test
    void plan_writesNInstances_atMostSPerLayer_everyExpertOfEveryTraceLayer_numberedAsInTheTrace() {
        Path out = dir.resolve("placement.json");
        CliRun r = CliRun.of("router", "plan", "--trace", train.toString(), "--instances", "3", "--slots-per-instance",
                "7", "--out", out.toString());
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("placement: " + out + " (planner affinity, 3 instances, layers 2..4, 16 experts");
        Placement p = PlacementFiles.read(out);
        assertThat(p.getEpoch()).isEqualTo(1);
        assertThat(p.getInstancesList()).extracting(Instance::getId).containsExactly("expert-0", "expert-1", "expert-2");
        assertThat(p.getLayersList()).extracting(LayerPlacement::getLayer).containsExactly(2, 3, 4);
        for (LayerPlacement lp : p.getLayersList()) {
            assertThat(lp.getExpertsList()).extracting(ExpertPlacement::getExpert)
                    .containsExactlyElementsOf(java.util.stream.IntStream.range(0, 16).boxed().toList());
            Map<String, Integer> perInstance = new HashMap<>();
            for (ExpertPlacement ep : lp.getExpertsList()) {
                assertThat(ep.getInstanceIdsList()).isNotEmpty().doesNotHaveDuplicates();
                ep.getInstanceIdsList().forEach(id -> perInstance.merge(id, 1, Integer::sum));
            }
            assertThat(perInstance.values()).allSatisfy(n -> assertThat(n).isLessThanOrEqualTo(7));
        }
    }

    @Test
    void plan_fromLayerZero_isAcceptedByTheGatewaysPlacementTable() {
        Path trace = dir.resolve("from0.csv");
        TraceWriter.write(SyntheticTraces.clustered(300, 2, 8, 2, 2, 0.1, 3), TraceFormat.FLAME_PREFILL_CSV, trace);
        Path out = dir.resolve("p0.json");
        CliRun r = CliRun.of("router", "plan", "--trace", trace.toString(), "--instances", "4", "--slots-per-instance",
                "3", "--planner", "round-robin", "--endpoints", "h0:1,h1:2,h2:3,h3:4", "--out", out.toString());
        assertThat(r.exitCode()).as(r.err()).isZero();
        PlacementTable table = PlacementTable.of(PlacementFiles.read(out), 2, 8);
        assertThat(table.instances()).extracting(Instance::getEndpoint).containsExactly("h0:1", "h1:2", "h2:3", "h3:4");
    }

    @Test
    void evalPlacement_printsThePlacementNextToRoundRobin_andAffinityNeedsFewerInstancesPerToken() {
        Path out = dir.resolve("placement.json");
        assertThat(CliRun.of("router", "plan", "--trace", train.toString(), "--instances", "4", "--slots-per-instance",
                "5", "--out", out.toString()).exitCode()).isZero();
        CliRun r = CliRun.of("router", "eval-placement", "--placement", out.toString(), "--trace", test.toString());
        assertThat(r.exitCode()).as(r.err()).isZero();
        assertThat(r.out()).contains("| placement | fan-out | load max/mean | cross-instance pairs | extra replicas "
                + "| max experts per instance per layer |");
        String mine = r.out().lines().filter(l -> l.startsWith("| placement.json |")).findFirst().orElseThrow();
        String rr = r.out().lines().filter(l -> l.startsWith("| round-robin |")).findFirst().orElseThrow();
        // 20 slots per layer for 16 experts: 4 extra copies at each of the 3 layers
        assertThat(mine).matches("\\| placement.json \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+ \\| 12 \\| 5 \\|");
        assertThat(rr).matches("\\| round-robin \\| [\\d.]+ \\| [\\d.]+ \\| [\\d.]+ \\| 0 \\| 4 \\|");
        assertThat(Double.parseDouble(mine.split("\\|")[2].strip())).isLessThan(Double.parseDouble(rr.split("\\|")[2].strip()));
    }

    @Test
    void evalPlacement_refusesAPlacementOfOtherLayers_namingTheFileAndTheLayer() {
        Path other = dir.resolve("other.json");
        PlacementFiles.write(other, Placement.newBuilder().setEpoch(1)
                .addInstances(Instance.newBuilder().setId("a").setEndpoint("h:1"))
                .addLayers(LayerPlacement.newBuilder().setLayer(0)
                        .addExperts(ExpertPlacement.newBuilder().setExpert(0).addInstanceIds("a"))).build());
        CliRun r = CliRun.of("router", "eval-placement", "--placement", other.toString(), "--trace", test.toString());
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh eval-placement: " + other + ": layer 0 is not in the trace "
                + test + " (layers 2..4)");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
            "--instances 0 --slots-per-instance 4 | --instances must be at least 1, got 0",
            "--instances 2 --slots-per-instance 7 | --slots-per-instance 7 × --instances 2 = 14 slots per layer cannot "
                    + "hold the 16 experts of a layer once (needs at least 8 slots per instance)",
            "--instances 2 --slots-per-instance 8 --planner greedy | --planner must be one of affinity, affinity-stats, round-robin, "
                    + "got \"greedy\"",
            "--instances 2 --slots-per-instance 8 --memory-budget 1000 --expert-bytes 100 | --memory-budget 1000 bytes "
                    + "holds 10 experts of 100 bytes per instance, 3 per layer over 3 layers: 2 instances cannot hold "
                    + "the 16 experts of a layer once (needs at least 2400 bytes)",
            "--instances 2 --slots-per-instance 8 --memory-budget 1000 | --expert-bytes must be at least 1 with "
                    + "--memory-budget, got 0",
            "--instances 2 --slots-per-instance 8 --endpoints h:1 | --endpoints needs one HOST:PORT per instance (2), "
                    + "got 1",
            "--instances 2 --slots-per-instance 8 --endpoints h:1,nope | --endpoints takes HOST:PORT, got \"nope\""})
    void plan_badOptions_exitTwo_withOneLineNamingTheOption(String args, String message) {
        String[] argv = ("router plan --trace " + train + " --out " + dir.resolve("x.json") + " " + args).split(" ");
        CliRun r = CliRun.of(argv);
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh plan: " + message);
        assertThat(dir.resolve("x.json")).doesNotExist();
    }

    @Test
    void plan_aMissingTrace_exitsTwo_namingTheFile() {
        CliRun r = CliRun.of("router", "plan", "--trace", dir.resolve("none.csv").toString(), "--instances", "2",
                "--slots-per-instance", "8", "--out", dir.resolve("x.json").toString());
        assertThat(r.exitCode()).isEqualTo(2);
        assertThat(r.err().strip()).isEqualTo("moemesh plan: " + dir.resolve("none.csv") + ": no such file");
    }
}
