package io.moemesh.router.trace;

import static org.assertj.core.api.Assertions.assertThatCode;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RouteTraceTest {

    @TempDir
    Path dir;

    private Path csv(String name, String rows) throws IOException {
        Path file = dir.resolve(name);
        Files.writeString(file, "token_idx,token_id,layer,e0,e1,w0,w1\n" + rows);
        return file;
    }

    @Test
    void requireSameModel_accepts_filesWhoseHighestExpertIdDiffersByChance() throws IOException {
        RouteTrace train = TraceReader.read(csv("train.csv", "0,1,2,60,3,0.5,0.4\n0,1,3,1,2,0.5,0.4\n"));
        RouteTrace test = TraceReader.read(csv("test.csv", "0,1,2,40,3,0.5,0.4\n0,1,3,1,2,0.5,0.4\n"));

        assertThatCode(() -> train.requireSameModel(test)).doesNotThrowAnyException();
    }

    @Test
    void requireSameModel_refuses_otherLayersOrExpertCountsOrTopK_namingBothFiles() throws IOException {
        RouteTrace train = TraceReader.read(csv("train.csv", "0,1,2,60,3,0.5,0.4\n0,1,3,1,2,0.5,0.4\n"));
        RouteTrace otherLayers = TraceReader.read(csv("layers.csv", "0,1,2,6,3,0.5,0.4\n0,1,3,1,2,0.5,0.4\n"
                + "0,1,4,1,2,0.5,0.4\n"));
        RouteTrace otherExperts = TraceReader.read(csv("experts.csv", "0,1,2,6,3,0.5,0.4\n0,1,3,1,2,0.5,0.4\n"));
        Path topK = dir.resolve("topk.csv");
        Files.writeString(topK, "token_idx,token_id,layer,e0,w0\n0,1,2,60,0.5\n0,1,3,1,0.5\n");

        assertThatThrownBy(() -> train.requireSameModel(otherLayers))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage(dir.resolve("layers.csv") + " (layers 2..4, 8 experts, top-2) is not from the model of "
                        + dir.resolve("train.csv") + " (layers 2..3, 64 experts, top-2)");
        assertThatThrownBy(() -> train.requireSameModel(otherExperts)).hasMessageContaining("8 experts");
        assertThatThrownBy(() -> train.requireSameModel(TraceReader.read(topK))).hasMessageContaining("top-1");
    }
}
