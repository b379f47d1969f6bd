# A Sinatra (modular) app under the bridge, with Rack::Lint around it.
require "sinatra/base"

class Hello < Sinatra::Base
  set :logging, false

  get "/hello/:name" do
    "Hello, #{params[:name]}! (worker #{UWSGI.worker_id})"
  end

  post "/echo" do
    request.body.read
  end
end

use Rack::Lint
run Hello
