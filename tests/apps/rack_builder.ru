# A real Rack::Builder app: stock middleware, a custom one, and a mapped sub-app.
require "json"

# Adds a header to every response, wrapping the body as Rack asks middleware to.
class MarkResponses
  def initialize(app)
    @app = app
  end

  def call(env)
    status, headers, body = @app.call(env)
    [status, headers.merge("X-Middleware" => "yes"), body]
  end
end

use Rack::Lint
use Rack::Runtime
use Rack::ContentLength
use MarkResponses

map "/admin" do
  run ->(env) {
    [200, { "Content-Type" => "application/json" },
     [JSON.generate("script_name" => env["SCRIPT_NAME"], "path_info" => env["PATH_INFO"])]]
  }
end

map "/greet" do
  run ->(env) {
    name = Rack::Request.new(env).params.fetch("name", "world")
    [200, { "Content-Type" => "text/plain" }, Rack::BodyProxy.new(["hello, #{name}\n"]) {}]
  }
end
