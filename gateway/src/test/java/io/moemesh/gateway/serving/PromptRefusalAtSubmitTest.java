package io.moemesh.gateway.serving;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moemesh.gateway.dispatch.DispatchTraces;
import io.moemesh.gateway.scheduling.EngineLoop;
import io.moemesh.model.MoeModel;
import io.moemesh.model.generate.GenerationRequest;
import io.moemesh.model.generate.SamplingParams;
import io.moemesh.model.generate.StepScheduler;
import io.moemesh.model.golden.TestModels;
import java.time.Duration;
import java.util.List;
import java.util.OptionalLong;
import java.util.function.LongConsumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A prompt longer than the caps admit (the attend offload's service looks down) is refused at submit with 503, the
 * wait in its message; after admission, so a draining gateway says it drains. Before, the cap was checked first and a
 * draining gateway answered kvcache_unavailable.
 */
class PromptRefusalAtSubmitTest {
    private static final int MAX_WAITING = 2;
    private static MoeModel model;
    private EngineLoop loop;

    /** Refuses every prompt longer than 2 tokens, with a 7 s wait. */
    private static final SequenceCaps REFUSING = new SequenceCaps() {
        @Override
        public int positions(long seqId) {
            return Integer.MAX_VALUE;
        }

        @Override
        public int promptPositions() {
            return 2;
        }

        @Override
        public int retryAfterSeconds() {
            return 7;
        }

        @Override
        public void onLowered(LongConsumer listener) {
        }
    };

    @BeforeAll
    static void open() {
        model = MoeModel.open(TestModels.dir(TestModels.MIXTRAL));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    @AfterEach
    void stop() {
        loop.close();
    }

    private GenerationService service() {
        loop = new EngineLoop(new StepScheduler(model.localEngine(), model.newCache(64), 16, 1), () -> { },
                Duration.ofMillis(10));
        AdmissionControl admission = new AdmissionControl(MAX_WAITING, 0, 20, 32, 32, loop::waiting, System::nanoTime);
        return new GenerationService(loop, model.tokenizer(), admission,
                new ServingMetrics(new SimpleMeterRegistry(), System::nanoTime),
                new DispatchTraces(model.config().numLayers(), 8), () -> { }, REFUSING);
    }

    private static ServingRequest request() {
        return new ServingRequest("r", "t", new GenerationRequest(new int[] {1, 5, 9},
                new SamplingParams(0, 1, 0, OptionalLong.empty(), 4, true), false), List.of(), System.nanoTime());
    }

    @Test
    void submit_promptPastTheCap_isRefusedWith503_andTheWaitInItsMessage() {
        GenerationService service = service();
        // max-waiting + 1 refusals first: each gives its waiting slot back, else the last would be 429 (queue full).
        for (int i = 0; i < MAX_WAITING; i++) {
            assertThatThrownBy(() -> service.submit(request(), null)).isInstanceOf(OffloadFailedException.class);
        }

        assertThatThrownBy(() -> service.submit(request(), null)).isInstanceOfSatisfying(OffloadFailedException.class,
                e -> assertThat(e.retryAfterSeconds()).isEqualTo(7)).hasMessageContaining("3 tokens")
                .hasMessageEndingWith("; retry after 7 s");
    }

    @Test
    void submit_whileDraining_saysItDrains_beforeThePromptCap() {
        GenerationService service = service();
        service.admission().startDraining();

        assertThatThrownBy(() -> service.submit(request(), null)).isInstanceOf(DrainingException.class);
    }
}
