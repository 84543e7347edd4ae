package io.moemesh.service.grpc;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class OpenStreamsTest {

    @Test
    void register_afterStopAccepting_isRefused_andTheOpenOnesStayUntilEndAll() {
        OpenStreams<String> streams = new OpenStreams<>();
        assertThat(streams.register("a")).isTrue();
        streams.stopAccepting();

        assertThat(streams.stopping()).isTrue();
        assertThat(streams.register("b")).isFalse();
        assertThat(streams.size()).isEqualTo(1);
        List<String> ended = new ArrayList<>();
        streams.endAll(ended::add);
        assertThat(ended).containsExactly("a");
    }

    @Test
    void register_afterEndAll_isRefused() {
        OpenStreams<String> streams = new OpenStreams<>();
        streams.endAll(s -> { });

        assertThat(streams.stopping()).isTrue();
        assertThat(streams.register("late")).isFalse();
        assertThat(streams.size()).isZero();
    }

    @Test
    void endAll_endsEachOpenOneOnce_notTheUnregistered() {
        OpenStreams<String> streams = new OpenStreams<>();
        streams.register("a");
        streams.register("b");
        streams.register("gone");
        streams.unregister("gone");
        List<String> ended = new ArrayList<>();

        streams.endAll(ended::add);
        streams.endAll(ended::add);

        assertThat(ended).containsExactly("a", "b");
        assertThat(streams.size()).isZero();
    }

    /**
     * A call's end takes its own lock and then unregisters here, while another thread holding that call's lock may be
     * unregistering it too: under this registry's lock that would deadlock.
     */
    @Test
    void endAll_endsOutsideTheLock_soAnEndMayUnregisterFromAnotherThread() throws Exception {
        OpenStreams<String> streams = new OpenStreams<>();
        streams.register("a");
        streams.register("b");
        List<String> ended = new ArrayList<>();

        streams.endAll(s -> {
            CompletableFuture.runAsync(() -> {
                streams.unregister(s);
                streams.register("refused");
            }).orTimeout(10, TimeUnit.SECONDS).join();
            ended.add(s);
        });

        assertThat(ended).containsExactly("a", "b");
        assertThat(streams.size()).isZero();
    }

    @Test
    void endAll_anEndThatThrows_doesNotLeaveTheOthersOpen() {
        OpenStreams<String> streams = new OpenStreams<>();
        streams.register("a");
        streams.register("b");
        List<String> ended = new ArrayList<>();

        streams.endAll(s -> {
            ended.add(s);
            throw new IllegalStateException("call already closed");
        });

        assertThat(ended).containsExactly("a", "b");
    }

    @Test
    void resume_afterAStop_acceptsAgain() {
        OpenStreams<String> streams = new OpenStreams<>();
        streams.endAll(s -> { });

        streams.resume();

        assertThat(streams.stopping()).isFalse();
        assertThat(streams.register("again")).isTrue();
        assertThat(streams.size()).isEqualTo(1);
    }
}
