package io.moemesh.cli.mesh;

import io.moemesh.proto.gateway.v1.GenerateRequest;
import io.moemesh.proto.gateway.v1.InstanceDispatch;
import io.moemesh.proto.gateway.v1.LayerDispatch;
import io.moemesh.proto.gateway.v1.SamplingParams;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Start a local mesh, stream one greedy generation through it, show where each layer sent the "
                + "prompt's tokens (instance, token count, experts), and stop the mesh again (also on failure).",
        exitCodeListHeading = "%nExit codes:%n",
        exitCodeList = {
            "0:done",
            "2:bad input (model directory, options, service jars not built)",
            "3:the mesh did not come up, or the generation failed with UNAVAILABLE"})
public final class DemoCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @picocli.CommandLine.Mixin
    BundledMeshOptions mesh = new BundledMeshOptions();

    @Option(names = "--prompt", defaultValue = "Experts in a mixture", paramLabel = "TEXT",
            description = "Prompt (default \"${DEFAULT-VALUE}\").")
    String prompt;

    @Option(names = "--max-tokens", defaultValue = "24", paramLabel = "N", description = "Tokens to generate (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--state-dir", paramLabel = "DIR",
            description = "State of the demo's mesh (default .moemesh/demo under the repository root).")
    Path stateDir;

    @picocli.CommandLine.Mixin
    ServiceJvmOptions jvm = new ServiceJvmOptions("512m");

    @picocli.CommandLine.Mixin
    TransportOption transport = new TransportOption();

    @picocli.CommandLine.Mixin
    ApiKeyOption apiKey = new ApiKeyOption();

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        // Checked before any service starts: the gateway would refuse it only after the whole mesh came up.
        if (maxTokens < 1) {
            throw new IllegalArgumentException("--max-tokens must be >= 1, got " + maxTokens);
        }
        MeshHome home = MeshHome.detect();
        Path dir = stateDir != null ? stateDir : home.defaultStateDir().resolve("demo");
        MeshSpec ms = new MeshSpec(mesh.model(home), mesh.experts(), mesh.replicas(), dir, jvm.heap,
                jvm.timeout(), home, jvm.jvmOptions).withTransport(transport.resolve());
        // stopOnJvmExit: a Ctrl-C during the demo still stops the services it started.
        try (RunningMesh mesh = MeshLauncher.up(ms, err, true);
             GatewayClient client = new GatewayClient(mesh.gatewayEndpoint(), null, apiKey.resolve())) {
            UpCommand.printEndpoints(mesh, out);
            mesh.placementTable().summary().forEach(out::println);
            out.println();
            out.println("prompt: " + prompt);
            out.print("completion: ");
            out.flush();
            GenerateRequest request = GenerateRequest.newBuilder().setPrompt(prompt).setTrace(true)
                    .setSampling(SamplingParams.newBuilder().setMaxTokens(maxTokens)).build();
            Generation g = client.generate(request, r -> {
                out.print(r.getText());
                out.flush();
            });
            out.println();
            out.println();
            out.printf("where the prompt's %d tokens went (placement epoch %d):%n", g.trace().getInputIdsCount(),
                    g.trace().getPlacementEpoch());
            for (LayerDispatch ld : g.trace().getDispatchList()) {
                out.printf("  layer %d: %s%n", ld.getLayer(),
                        ld.getInstancesList().stream().map(DemoCommand::describe).collect(Collectors.joining("; ")));
            }
            out.flush();
            err.println("moemesh demo: stopping the mesh");
            err.flush();
        } catch (io.grpc.StatusRuntimeException e) {
            out.println();
            out.flush();
            err.println("moemesh demo: the mesh is stopped; its service logs are in " + dir.toAbsolutePath().resolve("logs"));
            err.flush();
            throw e;
        }
        return 0;
    }

    private static String describe(InstanceDispatch d) {
        return d.getInstanceId() + " <- " + d.getTokenCount() + " tokens, experts " + d.getExpertsList();
    }
}
